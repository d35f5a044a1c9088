// The export is swapped for another disk (another identity) while the remote node is in
// backoff: the node goes failed, queued writes fail, and the new disk is untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { NbdClient, NbdError } from '../helpers/nbd-client.js';
import { blockContent } from '../helpers/blocks.js';

test('another identity after reconnect → failed, queued writes fail, new disk untouched', async (t) => {
  const pair = await startPair(t, { size: 4 * 1024 * 1024, fixedPort: true, remotePolicy: ['--reconnect-delay', '200ms'] });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  await c.write(0, blockContent(0, 1));
  await pair.exp.dstJson(['node', 'stop', pair.exportName]);
  await pair.rem.waitForState(pair.remoteName, 'backoff', 15_000);
  const queued = Array.from({ length: 8 }, (_, i) => c.write(i * 4096, blockContent(i, 2)).then(() => 0, (e) => (e instanceof NbdError ? e.errno : -1)));
  const other = join(pair.exp.dir, 'other.img');
  writeFileSync(other, Buffer.alloc(4 * 1024 * 1024));
  await pair.exp.dstJson(['node', 'del', pair.exportName]);
  await pair.exp.dstJson(['node', 'add', pair.exportName, '--disk', other, '--listen', pair.listen]);
  await pair.exp.dstJson(['security', 'add', pair.exportName, '--addr', '127.0.0.1', '--perm', 'rw']);
  await pair.exp.dstJson(['node', 'start', pair.exportName]);
  const failed = await pair.rem.waitForState(pair.remoteName, 'failed', 20_000);
  assert.match(failed.reason ?? '', /identity/);
  const results = await Promise.all(queued);
  for (const r of results) assert.notEqual(r, 0, 'queued write must fail, not land on the wrong disk');
  assert.ok(readFileSync(other).equals(Buffer.alloc(4 * 1024 * 1024)), 'the new disk is untouched');
});
