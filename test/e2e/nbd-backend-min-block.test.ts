// An NBD server that requires 4096-byte alignment behind the export (issue 17): nbdkit's
// blocksize-policy filter fails anything smaller with EINVAL (checked directly first), yet through
// dst 512-byte writes, odd-sized reads and unaligned zeroes work — the backend reads around and
// read-modify-writes the edge blocks — and eight concurrent sector writes into one block all land.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { NbdClient, NbdError } from '../helpers/nbd-client.js';
import { blockContent } from '../helpers/blocks.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const EINVAL = 22;

test('server minimum block 4096: unaligned writes, reads and zeroes through dst are aligned by the backend', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const dir = tmpDir(t);
  const sock = join(dir, 'nbdkit.sock');
  const server = await startNbdServer(t, 'nbdkit',
    ['-f', '-U', sock, '--filter=blocksize-policy', 'memory', '16M', 'blocksize-minimum=4096', 'blocksize-error-policy=error'], sock);
  const direct = await NbdClient.connect(sock);
  const refused = await direct.write(512, Buffer.alloc(512, 1)).then(() => null, (err: unknown) => err);
  direct.close();
  assert.ok(refused instanceof NbdError && refused.errno === EINVAL, `the server itself refuses a 512-byte write: ${String(refused)}`);

  const pair = await startPair(t, { disk: server.uri });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  const expected = Buffer.alloc(4 * 4096);
  const put = async (offset: number, data: Buffer): Promise<void> => {
    await c.write(offset, data);
    data.copy(expected, offset);
  };

  await put(0, blockContent(0, 1)); // aligned
  await put(512, Buffer.alloc(512, 0xa5)); // one sector inside block 0
  await put(4096 - 100, Buffer.alloc(300, 0x5a)); // across blocks 0 and 1
  // eight sectors of block 2 at once: each read-modify-write must see the others'
  await Promise.all(Array.from({ length: 8 }, (_, i) => put(2 * 4096 + i * 512, Buffer.alloc(512, 0x10 + i))));
  await put(3 * 4096, blockContent(3, 2));
  await c.writeZeroes(3 * 4096 + 1000, 2000);
  expected.fill(0, 3 * 4096 + 1000, 3 * 4096 + 3000);

  assert.ok((await c.read(0, expected.length)).equals(expected), 'aligned read of everything');
  assert.ok((await c.read(700, 5000)).equals(expected.subarray(700, 5700)), 'an unaligned read');
  assert.ok((await c.read(2 * 4096 + 1536, 512)).equals(Buffer.alloc(512, 0x13)), 'a sector read');
  const show = await pair.exp.show(pair.exportName);
  assert.equal(show.stats.failed, 0, 'nothing failed at the export');
});
