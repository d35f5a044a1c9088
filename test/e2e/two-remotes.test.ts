// Two remote nodes on different engines against one export at once; each verifies its own
// region and sees the other's writes after they completed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { startEngine } from '../helpers/engine.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { NbdClient } from '../helpers/nbd-client.js';
import type { NodeShow } from '../../src/engine/types.js';

test('two remote nodes on two engines write and read one export concurrently', async (t) => {
  const pair = await startPair(t, { size: 16 * 1024 * 1024 });
  const third = await startEngine(t);
  await third.dstJson(['node', 'add', 'vol2', '--remote', pair.listen, '--export', pair.exportName]);
  const ready = await third.dstJson<NodeShow>(['node', 'start', 'vol2', '--wait', '10s']);
  assert.equal(ready.state, 'ready');
  const a = await NbdClient.connect(pair.socket);
  const b = await NbdClient.connect(ready.nbd!.socket);
  t.after(() => { a.close(); b.close(); });
  const blocks = 256; // 1 MiB each side, 4 KiB blocks; A writes even blocks, B odd ones
  await Promise.all([
    Promise.all(Array.from({ length: blocks }, (_, i) => a.write(2 * i * 4096, blockContent(2 * i, 1)))),
    Promise.all(Array.from({ length: blocks }, (_, i) => b.write((2 * i + 1) * 4096, blockContent(2 * i + 1, 1)))),
  ]);
  await Promise.all([a.flush(), b.flush()]);
  for (const client of [a, b]) {
    const data = await client.read(0, 2 * blocks * 4096);
    for (let n = 0; n < 2 * blocks; n++) assert.equal(checkBlock(data.subarray(n * 4096, (n + 1) * 4096), n).version, 1);
  }
});
