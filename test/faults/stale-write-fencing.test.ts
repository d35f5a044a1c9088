// A write held by the export past a reconnect must never land after a newer write to the
// same block. With fencing the final content is the newest; with fencing switched off (a
// test-only switch) the same run shows the revert — proof this test can fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { sleep } from '../helpers/tools.js';

const OFFSET = 64 * 4096;
const HOLD_MS = 2500;

async function scenario(t: import('node:test').TestContext, fencing: boolean): Promise<number> {
  const env: Record<string, string> = { DST_TEST_HOLD_WRITE: `${OFFSET}:${HOLD_MS}` };
  if (!fencing) env.DST_TEST_NO_FENCING = '1';
  const pair = await startPair(t, { size: 4 * 1024 * 1024, exportEnv: env, remotePolicy: ['--resend-timeout', '1s'] });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  const first = c.write(OFFSET, blockContent(64, 1));
  await sleep(400); // the export holds the v1 write now
  await pair.rem.dstJson(['node', 'reconnect', pair.remoteName]);
  await first; // replayed on the new connection and acknowledged
  await c.write(OFFSET, blockContent(64, 2));
  await pair.exp.waitForLog(/held write executed/, HOLD_MS + 5000);
  await sleep(200);
  const version = checkBlock(await c.read(OFFSET, 4096), 64).version;
  const show = await pair.show();
  assert.ok(show.stats.replayed >= 1, 'the held write was replayed');
  return version;
}

test('with fencing the held write cannot revert a newer one', async (t) => {
  assert.equal(await scenario(t, true), 2, 'final content is the newest write');
});

test('without fencing the held write lands last and reverts the block (the bug fencing prevents)', async (t) => {
  assert.equal(await scenario(t, false), 1, 'the stale write landed after the newer one');
});
