// nbdkit's error filter behind the export (issue 17): a server error reply reaches the remote
// node's NBD client as its errno — EIO for reads, ENOSPC for writes (an errno NBD carries) — while
// other requests in flight at the same time are served, and once the fault is gone all are again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { NbdClient, NbdError } from '../helpers/nbd-client.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const EIO = 5, ENOSPC = 28;
const GOOD = 8;

const errnoOf = (p: Promise<unknown>): Promise<number | null> =>
  p.then(() => null, (err: unknown) => { assert.ok(err instanceof NbdError, `an NBD error reply: ${String(err)}`); return err.errno; });

test('nbdkit error filter: reads fail with EIO, writes with ENOSPC, concurrent other requests are served, the export keeps serving', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const dir = tmpDir(t);
  const sock = join(dir, 'nbdkit.sock');
  const failReads = join(dir, 'fail-reads'), failWrites = join(dir, 'fail-writes');
  const server = await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, '--filter=error', 'memory', '16M',
    'error-pread=EIO', 'error-pread-rate=100%', `error-pread-file=${failReads}`,
    'error-pwrite=ENOSPC', 'error-pwrite-rate=100%', `error-pwrite-file=${failWrites}`], sock);
  const pair = await startPair(t, { disk: server.uri });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  await c.write(0, blockContent(0, 1));

  // reads fail while writes, in flight with them, succeed
  writeFileSync(failReads, '');
  const [readErr, ...writes] = await Promise.all([
    errnoOf(c.read(0, 4096)),
    ...Array.from({ length: GOOD }, (_, i) => errnoOf(c.write((1 + i) * 4096, blockContent(1 + i, 1)))),
  ]);
  assert.equal(readErr, EIO, 'the read failed with EIO');
  assert.deepEqual(writes, Array(GOOD).fill(null), 'the writes in flight with it succeeded');
  unlinkSync(failReads);

  // writes fail with ENOSPC while reads, in flight with them, succeed
  writeFileSync(failWrites, '');
  const reads = Array.from({ length: GOOD }, (_, i) => c.read((1 + i) * 4096, 4096));
  const writeErr = await errnoOf(c.write(0, blockContent(0, 2)));
  assert.equal(writeErr, ENOSPC, 'the write failed with ENOSPC, not the EIO fallback');
  (await Promise.all(reads)).forEach((b, i) => assert.equal(checkBlock(b, 1 + i).version, 1));
  unlinkSync(failWrites);

  assert.equal(checkBlock(await c.read(0, 4096), 0).version, 1, 'the failed write changed nothing');
  await c.write(0, blockContent(0, 3));
  assert.equal(checkBlock(await c.read(0, 4096), 0).version, 3);
  const show = await pair.exp.show(pair.exportName);
  assert.equal(show.state, 'listening');
  assert.equal(show.backend?.reconnects, 0, 'an error reply is not a lost link');
  assert.ok(show.stats.failed >= 2, 'the export counted the failures');
});
