// The legs' metadata wins over the order given to `node add`: a fresh engine (empty state dir)
// given a degraded mirror's legs in swapped order puts its legs in the metadata's order (said in
// the log, kept in the config), takes the leg that went on as the source by generation, resyncs
// only the regions the other missed, and serves the data written; the legs end identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { layoutDevice, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import { startEngine } from '../helpers/engine.js';
import { NbdClient } from '../helpers/nbd-client.js';
import type { NodeShow } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const REGION = 256 * K;
const WRITTEN = [1, 4, 7, 10];

test('legs given to a fresh engine in swapped order: the metadata orders them, the right leg is the source', async (t) => {
  const { exp, legs } = await startLegs(t, [12 * M, 12 * M]);
  const { nbd, rem, show: first } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K'], ['--leg-timeout', '500ms']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  await exp.dstJson(['node', 'stop', 'leg0', '--force']);
  for (const r of WRITTEN) await nbd.write(r * REGION, blockContent((r * REGION) / 4096, 2)); // leg 1 only
  await nbd.flush();
  await waitLegStates(rem, ['behind', 'in-sync']);
  nbd.close();
  await rem.kill('SIGKILL'); // the engine and its state dir are gone

  const fresh = await startEngine(t);
  await exp.dstJson(['node', 'start', 'leg0']);
  await fresh.dstJson(['node', 'add', 'vol', '--layout', 'mirror', '--remote', legs[1]!.listen, '--remote', legs[0]!.listen]);
  const started = await fresh.dstJson<NodeShow>(['node', 'start', 'vol', '--wait', '10s']);
  assert.equal(started.state, 'ready');
  assert.match(first.uuid ?? '', /^[0-9a-f]{32}$/);
  assert.equal(started.uuid, first.uuid, 'the same mirror: its uuid from the legs');
  await fresh.waitForLog(/vol: the legs' metadata orders them otherwise than the node's config \(leg 1 \(\S+\/leg0\) is leg 0, leg 0 \(\S+\/leg1\) is leg 1\): the node's legs follow the metadata/);
  const show = await waitLegStates(fresh, ['in-sync', 'in-sync']);
  assert.deepEqual(show.legs!.map((l) => `${l.remote}/${l.export}`), [legs[0]!.listen, legs[1]!.listen], 'the node\'s legs are in the metadata\'s order');
  const listed = await fresh.dstJson<NodeShow[]>(['node', 'list']);
  assert.deepEqual(listed.find((n) => n.name === 'vol')!.legs!.map((l) => l.export), ['leg0', 'leg1']);
  assert.equal(show.legs![0]!.stats.resyncedBytes, WRITTEN.length * REGION, 'leg 0 copied exactly the regions it missed');
  assert.equal(show.legs![0]!.stats.comparedBytes, 0, 'a bitmap resync, not a full compare');
  assert.equal(show.legs![1]!.stats.resyncedBytes, 0, 'nothing was copied onto the leg that went on');

  const client = await NbdClient.connect(show.nbd!.socket);
  t.after(() => client.close());
  for (const r of WRITTEN) assert.equal(checkBlock(await client.read(r * REGION, 4096), (r * REGION) / 4096).version, 2);
  await client.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, show.size!), 'legs identical');
});
