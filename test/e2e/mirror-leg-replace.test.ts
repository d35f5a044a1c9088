// A dead leg replaced while the mirror serves a verified write load: `node leg del` the dead one,
// `node leg add` a blank export. The applications see a pause, never an error; the new leg
// compares every region against the survivor, copies what differs and goes in sync; the legs end
// byte-identical and every block reads its newest acknowledged version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkVersions, layoutDevice, sameBytes, startLegs, startWriteLoad, waitLegStates } from '../helpers/legs.js';
import type { NodeShow } from '../../src/engine/types.js';

const M = 1024 * 1024;

test('leg replaced online under verified load: zero application errors, the new leg in sync, legs identical', async (t) => {
  const { exp, legs } = await startLegs(t, [16 * M, 16 * M, 16 * M]);
  const { rem, nbd } = await layoutDevice(t, legs.slice(0, 2), ['--layout', 'mirror', '--region', '256K'], ['--leg-timeout', '500ms']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  const load = startWriteLoad(nbd, 2048);
  const until = async (n: number): Promise<void> => {
    const target = load.issued() + n;
    while (load.issued() < target) await new Promise((r) => setTimeout(r, 20));
  };
  await until(200);

  await exp.dstJson(['node', 'stop', 'leg1', '--force']); // the disk dies
  const deadline = Date.now() + 20_000;
  while ((await rem.dstJson<NodeShow>(['node', 'show', 'vol'])).legs![1]!.state === 'in-sync') {
    assert.ok(Date.now() < deadline, 'leg 1 never left in-sync');
    await new Promise((r) => setTimeout(r, 100));
  }
  await until(200);

  const removed = await rem.dstJson<NodeShow>(['node', 'leg', 'del', 'vol', '1']);
  assert.equal(removed.legs!.length, 1);
  assert.equal(removed.legs![0]!.remote, legs[0]!.listen.split('/')[0]);
  await until(200);

  const added = await rem.dstJson<NodeShow>(['node', 'leg', 'add', 'vol', '--remote', legs[2]!.listen]);
  assert.equal(added.legs!.length, 2);
  assert.equal(added.legs![1]!.export, 'leg2');
  await rem.waitForLog(/leg 1 \(\S+leg2\) added/);
  const synced = await waitLegStates(rem, ['in-sync', 'in-sync'], 60_000);
  await until(200);

  const failed = await load.stop();
  assert.equal(failed, 0, 'no write failed at the NBD client');
  assert.equal(synced.legs![1]!.stats.comparedBytes, synced.size, 'the new leg compared every region');
  await nbd.flush();
  await checkVersions(nbd, load.versions);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  assert.ok(sameBytes(legs[0]!.file, legs[2]!.file, synced.size!), 'leg 0 and the new leg are identical');
  const config = await rem.dst(['config', 'show']);
  assert.match(config.stdout, /leg2/, 'the new leg is in the saved config');
  assert.doesNotMatch(config.stdout, /\/leg1\b/, 'the removed one is not');
});
