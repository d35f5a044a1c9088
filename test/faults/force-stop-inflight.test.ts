// `node stop --force` with I/O in flight: every request completes with an error, none hangs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { sleep } from '../helpers/tools.js';

test('force stop fails every in-flight request promptly', async (t) => {
  const pair = await startPair(t, { size: 8 * 1024 * 1024, viaProxy: true });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  await pair.proxy!.ctl('stall');
  const ios = Array.from({ length: 40 }, (_, i) => (i % 2 ? c.read(i * 4096, 4096) : c.write(i * 4096, Buffer.alloc(4096, i)))
    .then(() => 'ok', (e: Error) => e));
  await sleep(300);
  const t0 = Date.now();
  const res = await pair.rem.dst(['node', 'stop', pair.remoteName, '--force']);
  assert.equal(res.code, 0, res.stderr);
  const outcomes = await Promise.race([
    Promise.all(ios),
    sleep(5000).then(() => { throw new Error('requests still hanging 5 s after a forced stop'); }),
  ]);
  for (const o of outcomes) assert.ok(o instanceof Error, 'every in-flight request completed with an error');
  assert.ok(Date.now() - t0 < 5000);
  assert.equal((await pair.show()).state, 'configured');
});
