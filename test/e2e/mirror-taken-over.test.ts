// One writer per mirror: a second remote engine that assembles the same legs takes the mirror
// over (a higher session number, recorded by each export). The first engine's node goes failed
// with reason taken-over at its next write, and none of its writes lands after the takeover.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { layoutDevice, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import { startEngine } from '../helpers/engine.js';
import { NbdClient } from '../helpers/nbd-client.js';
import type { NodeShow } from '../../src/engine/types.js';

const M = 1024 * 1024;

test('a newer engine takes the mirror over; the older one fails taken-over and writes nothing more', async (t) => {
  const { legs } = await startLegs(t, [12 * M, 12 * M]);
  const a = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K']);
  await waitLegStates(a.rem, ['in-sync', 'in-sync']);
  await a.nbd.write(0, blockContent(0, 1));
  await a.nbd.flush();

  const b = await startEngine(t);
  await b.dstJson(['node', 'add', 'vol', '--layout', 'mirror', ...legs.flatMap((l) => ['--remote', l.listen])]);
  const bShow = await b.dstJson<NodeShow>(['node', 'start', 'vol', '--wait', '10s']);
  assert.equal(bShow.state, 'ready');
  await waitLegStates(b, ['in-sync', 'in-sync']);

  await assert.rejects(a.nbd.write(0, blockContent(0, 2)), 'the old engine\'s write is refused');
  const old = await a.rem.waitForState('vol', 'failed');
  assert.equal(old.reason, 'taken-over');
  await a.rem.waitForLog(/taken-over/);

  const nbd = await NbdClient.connect(bShow.nbd!.socket);
  t.after(() => nbd.close());
  assert.equal(checkBlock(await nbd.read(0, 4096), 0).version, 1, 'the old engine\'s write did not land');
  await nbd.write(4096, blockContent(1, 3));
  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, bShow.size!), 'legs identical');
});
