// A linear device whose second leg's export goes away: the node says backoff (reason leg) and
// leg 1 is no longer in sync, the first leg's range keeps serving, a write to the missing leg's
// range waits instead of failing and lands once the export is back; leg-state events tell it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { layoutDevice, readFileAt, startLegs } from '../helpers/legs.js';
import type { NodeShow } from '../../src/engine/types.js';

const M = 1024 * 1024;
const B = 4096;

test('linear: one leg away holds only its own range; back, the held write lands there', async (t) => {
  const { exp, legs } = await startLegs(t, [4 * M, 4 * M]);
  const { nbd, rem } = await layoutDevice(t, legs, ['--layout', 'linear'], ['--reconnect-delay', '200ms']);
  const events = await rem.events({ node: 'vol' });
  t.after(() => events.close());
  await nbd.write(0, blockContent(0, 1));

  await exp.dstJson(['node', 'stop', 'leg1', '--force']);
  await events.waitFor((e) => e.event === 'leg-state' && e.leg === 1 && e.from === 'in-sync', 10_000, 'leg 1 leaving in-sync');
  await rem.waitForState('vol', 'backoff');
  const away = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(away.reason, 'leg');
  assert.deepEqual(away.legs!.map((l) => l.state), ['in-sync', 'connecting']);

  // leg 0's range serves meanwhile; a write into leg 1's range waits for it
  assert.equal(checkBlock(await nbd.read(0, B), 0).version, 1);
  const held = nbd.write(4 * M + B, blockContent((4 * M + B) / B, 1));
  let settled = false;
  void held.then(() => { settled = true; }, () => { settled = true; });
  await nbd.write(B, blockContent(1, 1));
  assert.equal(settled, false, 'the write to the missing leg is held, not failed');

  await exp.dstJson(['node', 'start', 'leg1']);
  await held;
  await events.waitFor((e) => e.event === 'leg-state' && e.leg === 1 && e.to === 'in-sync', 15_000, 'leg 1 back in sync');
  await rem.waitForState('vol', 'ready');
  await nbd.flush();
  assert.equal(checkBlock(readFileAt(legs[1]!.file, B, B), (4 * M + B) / B).version, 1, 'the held write is on leg 1 at its offset');
  assert.equal(checkBlock(readFileAt(legs[0]!.file, B, B), 1).version, 1);
});
