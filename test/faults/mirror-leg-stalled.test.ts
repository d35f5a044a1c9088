// A mirror leg behind the fault proxy: a stall shorter than leg-timeout degrades nothing; a longer
// stall, and a cut with reconnects refused, send the leg behind while writes go on without error;
// when the link passes again the leg resyncs and both legs hold the same bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkVersions, layoutDevice, sameBytes, startLegs, startWriteLoad, waitLegStates,
} from '../helpers/legs.js';
import { startProxy } from '../helpers/proxy.js';
import type { NodeShow } from '../../src/engine/types.js';

const M = 1024 * 1024;
const HOT_BLOCKS = (2 * M) / 4096;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('mirror: short stall no degrade; long stall and cut → behind, no write error, resync after', async (t) => {
  const { legs } = await startLegs(t, [20 * M, 20 * M]);
  const [addr, exportName] = legs[1]!.listen.split('/') as [string, string];
  const proxy = await startProxy(t, addr);
  const viaProxy = [legs[0]!, { ...legs[1]!, listen: `${proxy.listen}/${exportName}` }];
  // resend-timeout well above leg-timeout: the leg's link outlives the mirror's patience
  const { nbd, rem } = await layoutDevice(t, viaProxy, ['--layout', 'mirror', '--region', '256K'],
    ['--leg-timeout', '1500ms', '--resend-timeout', '20s', '--reconnect-delay', '200ms']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  const load = startWriteLoad(nbd, HOT_BLOCKS);

  // 1. a stall shorter than leg-timeout: no degrade
  await proxy.ctl('stall');
  await sleep(600);
  await proxy.ctl('pass');
  await sleep(1500);
  let show = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(show.degraded, false, 'a short stall is not a degrade');
  assert.equal(show.legs![1]!.outOfSyncBytes, 0);

  // 2. a stall longer than leg-timeout: behind, writes go on
  await proxy.ctl('stall');
  const before = load.issued();
  await sleep(3500);
  show = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(show.degraded, true);
  assert.equal(show.legs![1]!.state, 'behind');
  assert.ok(show.legs![1]!.outOfSyncBytes > 0);
  assert.ok(load.issued() > before + 100, 'writes went on during the stall');
  await proxy.ctl('pass');
  await waitLegStates(rem, ['in-sync', 'in-sync']);

  // 3. cut, and reconnects refused: behind again; then accepted: resync
  await proxy.ctl('refuse');
  await proxy.ctl('cut');
  await sleep(3000);
  show = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(show.legs![1]!.state, 'behind');
  await proxy.ctl('accept');
  const synced = await waitLegStates(rem, ['in-sync', 'in-sync']);
  assert.equal(await load.stop(), 0, 'no write failed');
  assert.ok(synced.legs![1]!.stats.resyncedBytes > 0);

  await nbd.flush();
  const size = synced.size!;
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, size), 'both legs hold the same bytes');
  await checkVersions(nbd, load.versions);
});
