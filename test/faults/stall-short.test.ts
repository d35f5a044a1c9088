// A link stalled for 8 s (shorter than the deadline): no error; I/O issued during the stall
// completes only after the stall ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { sleep } from '../helpers/tools.js';

test('stall 8 s: I/O waits, then completes without error after the stall', async (t) => {
  const pair = await startPair(t, { size: 8 * 1024 * 1024, viaProxy: true });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  await c.write(0, blockContent(0, 1));
  await pair.proxy!.ctl('stall');
  const stalledAt = Date.now();
  const writes = Array.from({ length: 32 }, (_, i) => c.write(i * 4096, blockContent(i, 2)).then(() => Date.now()));
  await sleep(8000);
  await pair.proxy!.ctl('pass');
  const passedAt = Date.now();
  const done = await Promise.all(writes);
  for (const at of done) assert.ok(at >= passedAt - 50, `a write completed ${passedAt - at} ms before the stall ended`);
  assert.ok(Math.max(...done) - stalledAt < 2 * 8000 + 2000 + 8000, 'completed within the bound');
  const data = await c.read(0, 32 * 4096);
  for (let i = 0; i < 32; i++) assert.equal(checkBlock(data.subarray(i * 4096, (i + 1) * 4096), i).version, 2);
  const show = await pair.show();
  assert.equal(show.stats.failed, 0);
});
