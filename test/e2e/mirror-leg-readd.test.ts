// A leg removed from a mirror shares no history with it any more: offering its export again is
// refused, naming what it holds, and changes nothing; with --force-init it is initialised and
// synced (copying only what differs). Bad input: a leg index out of range, removing the last
// in-sync leg without --force, leg changes on a linear device.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent } from '../helpers/blocks.js';
import { layoutDevice, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import type { NodeShow } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const REGION = 256 * K;

test('leg del, then re-adding the removed export: refused without --force-init, initialised and synced with it', async (t) => {
  const { exp, legs } = await startLegs(t, [12 * M, 12 * M]);
  const { rem, nbd } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K'], ['--leg-timeout', '500ms']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  await nbd.write(0, blockContent(0, 1));

  const out = await rem.dstFail(['node', 'leg', 'del', 'vol', '2'], 1);
  assert.match(out.stderr, /node leg del vol 2: no leg 2 \(the mirror has legs 0 to 1\)/);
  await rem.dstJson(['node', 'leg', 'del', 'vol', '1']);
  await nbd.write(3 * REGION, blockContent(3 * REGION / 4096, 2)); // only leg 0 has it

  const refused = await rem.dstFail(['node', 'leg', 'add', 'vol', '--remote', legs[1]!.listen], 1);
  assert.match(refused.stderr, /leg 1 \(\S+\/leg1\) holds this mirror's metadata from before it was removed .*no history in common.*--force-init/);
  const unchanged = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(unchanged.legs!.length, 1, 'a refused add changes nothing');
  assert.equal(unchanged.state, 'ready');

  await rem.dstJson(['node', 'leg', 'add', 'vol', '--remote', legs[1]!.listen, '--force-init']);
  const synced = await waitLegStates(rem, ['in-sync', 'in-sync']);
  const leg1 = synced.legs![1]!.stats;
  assert.equal(leg1.comparedBytes, synced.size, 'the re-added leg compared every region');
  assert.equal(leg1.resyncedBytes, REGION, 'and copied only the region written while it was out');
  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, synced.size!), 'legs identical');

  // the last in-sync leg: leg 1's export dies, leg 0 may not go without --force
  await exp.dstJson(['node', 'stop', 'leg1', '--force']);
  await nbd.write(4 * REGION, blockContent(4 * REGION / 4096, 3));
  await waitLegStates(rem, ['in-sync', 'behind']);
  const last = await rem.dstFail(['node', 'leg', 'del', 'vol', '0'], 1);
  assert.match(last.stderr, /leg 0 \(\S+\/leg0\) is the last in-sync leg.*--force/);
  assert.equal((await rem.dstJson<NodeShow>(['node', 'show', 'vol'])).legs!.length, 2);
});

test('leg changes apply to mirrors only', async (t) => {
  const { legs } = await startLegs(t, [8 * M, 8 * M]);
  const { rem } = await layoutDevice(t, legs, ['--layout', 'linear']);
  const r = await rem.dstFail(['node', 'leg', 'del', 'vol', '1'], 1);
  assert.match(r.stderr, /node leg del vol 1: vol is a linear device; only a mirror's legs change while it serves/);
  const usage = await rem.dstFail(['node', 'leg', 'add', 'vol', '--remote', 'nohost'], 2);
  assert.match(usage.stderr, /--remote/);
});
