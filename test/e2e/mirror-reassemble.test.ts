// A mirror's remote engine lost with its state dir while the mirror was degraded: a fresh engine
// given the same legs reassembles the mirror from the legs' metadata alone — the leg that went on
// (leg 1, not the first one) is the source by generation, leg 0 copies only the regions it
// missed, and the legs end identical. Without a state-dir record and with a leg away, a fresh
// engine waits (and says so) until the leg is back or `--degraded` is given.
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
const WRITTEN = [2, 5, 9];

test('a fresh engine reassembles a degraded mirror from its legs and resyncs only what leg 0 missed', async (t) => {
  const { exp, legs } = await startLegs(t, [12 * M, 12 * M]);
  const { nbd, rem, show: first } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K'], ['--leg-timeout', '500ms']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  await exp.dstJson(['node', 'stop', 'leg0', '--force']);
  for (const r of WRITTEN) await nbd.write(r * REGION, blockContent((r * REGION) / 4096, 1));
  await nbd.flush();
  const behind = await waitLegStates(rem, ['behind', 'in-sync']);
  const [g0, g1] = behind.legs!.map((l) => l.generation);
  assert.match(g1 ?? '', /^[0-9a-f]{16}$/);
  assert.ok(g0 !== null && g0 !== g1, 'the legs in sync started a new generation; leg 0 keeps the old one');
  nbd.close();
  await rem.kill('SIGKILL'); // the engine and its state dir are gone

  const fresh = await startEngine(t);
  await exp.dstJson(['node', 'start', 'leg0']);
  await fresh.dstJson(['node', 'add', 'vol', '--layout', 'mirror', ...legs.flatMap((l) => ['--remote', l.listen])]);
  const started = await fresh.dstJson<NodeShow>(['node', 'start', 'vol', '--wait', '10s']);
  assert.equal(started.state, 'ready');
  assert.match(first.uuid ?? '', /^[0-9a-f]{32}$/);
  assert.equal(started.uuid, first.uuid, 'same uuid: the mirror comes from the legs');
  const show = await waitLegStates(fresh, ['in-sync', 'in-sync']);
  assert.equal(show.legs![0]!.stats.resyncedBytes, WRITTEN.length * REGION, 'leg 0 copied exactly the regions it missed');
  assert.equal(show.legs![0]!.stats.comparedBytes, 0, 'a bitmap resync, not a full compare');
  assert.equal(show.legs![1]!.stats.resyncedBytes, 0, 'nothing was copied onto the leg that went on');
  assert.equal(show.legs![0]!.generation, show.legs![1]!.generation, 'caught up: one generation');
  const again = await NbdClient.connect(show.nbd!.socket);
  t.after(() => again.close());
  for (const r of WRITTEN) assert.equal(checkBlock(await again.read(r * REGION, 4096), (r * REGION) / 4096).version, 1);
  await again.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, show.size!), 'legs identical');
});

test('no state-dir record and a leg away: the node waits, visibly, until --degraded', async (t) => {
  const { exp, legs } = await startLegs(t, [12 * M, 12 * M]);
  const { nbd, rem } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  await nbd.write(0, blockContent(0, 3));
  await nbd.flush();
  nbd.close();
  await rem.dstJson(['node', 'stop', 'vol']);
  await exp.dstJson(['node', 'stop', 'leg1', '--force']);

  const fresh = await startEngine(t);
  await fresh.dstJson(['node', 'add', 'vol', '--layout', 'mirror', ...legs.flatMap((l) => ['--remote', l.listen])]);
  await fresh.dstJson(['node', 'set', 'vol', '--reconnect-delay', '200ms']);
  const r = await fresh.dstFail(['node', 'start', 'vol', '--wait', '2s'], 1);
  assert.match(r.stderr, /not ready after 2s: state backoff \(reason waiting-for-legs\)/);
  const waiting = await fresh.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(waiting.reason, 'waiting-for-legs');
  assert.equal(waiting.nbd, null, 'nothing is served');
  await fresh.waitForLog(/waiting for every leg's metadata \(leg 1 away\).*--degraded/);
  const degraded = await fresh.dstJson<NodeShow>(['node', 'start', 'vol', '--degraded', '--wait', '10s']);
  assert.equal(degraded.state, 'ready');
  const client = await NbdClient.connect(degraded.nbd!.socket);
  t.after(() => client.close());
  assert.equal(checkBlock(await client.read(0, 4096), 0).version, 3);
});
