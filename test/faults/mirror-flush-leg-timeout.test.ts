// A FLUSH that one mirror leg does not answer within leg-timeout: the FLUSH succeeds once the
// other (in-sync) leg flushed, and the silent leg goes behind with exactly the regions written to
// it since its last completed FLUSH marked (not those an earlier FLUSH made durable), which the
// resync copies back when the link passes again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { layoutDevice, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import { startProxy } from '../helpers/proxy.js';
import type { NodeShow } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const REGION = 256 * K;

test('mirror FLUSH with a leg silent past leg-timeout: succeeds, the leg goes behind with its unflushed regions', async (t) => {
  const { legs } = await startLegs(t, [12 * M, 12 * M]);
  const [addr, exportName] = legs[1]!.listen.split('/') as [string, string];
  const proxy = await startProxy(t, addr);
  const viaProxy = [legs[0]!, { ...legs[1]!, listen: `${proxy.listen}/${exportName}` }];
  const { nbd, rem } = await layoutDevice(t, viaProxy, ['--layout', 'mirror', '--region', '256K'],
    ['--leg-timeout', '1s', '--resend-timeout', '30s', '--reconnect-delay', '200ms']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);

  // region 5 written and flushed on both legs: durable, never marked again
  await nbd.write(5 * REGION, blockContent(5 * 64, 1));
  await nbd.flush();
  // regions 0 and 3 written (no FUA) on both legs, then the FLUSH that leg 1 never answers
  await nbd.write(0, blockContent(0, 2));
  await nbd.write(3 * REGION, blockContent(3 * 64, 2));
  const resyncedBefore = (await rem.dstJson<NodeShow>(['node', 'show', 'vol'])).legs![1]!.stats.resyncedBytes;
  await proxy.ctl('stall');
  const started = Date.now();
  await nbd.flush();
  const ms = Date.now() - started;
  assert.ok(ms >= 900 && ms < 5000, `FLUSH answered after leg-timeout (1 s), took ${ms} ms`);
  const show = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(show.state, 'ready');
  assert.equal(show.degraded, true);
  assert.equal(show.legs![0]!.state, 'in-sync');
  assert.equal(show.legs![1]!.state, 'behind');
  assert.equal(show.legs![1]!.outOfSyncBytes, 2 * REGION, 'regions 0 and 3, not the flushed region 5');

  await proxy.ctl('pass');
  const synced = await waitLegStates(rem, ['in-sync', 'in-sync']);
  assert.equal(synced.legs![1]!.stats.resyncedBytes - resyncedBefore, 2 * REGION, 'the resync copied exactly the two regions');
  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, synced.size!), 'both legs hold the same bytes');
  assert.equal(checkBlock(await nbd.read(0, 4096), 0).version, 2);
  assert.equal(checkBlock(await nbd.read(3 * REGION, 4096), 3 * 64).version, 2);
  assert.equal(checkBlock(await nbd.read(5 * REGION, 4096), 5 * 64).version, 1);
});
