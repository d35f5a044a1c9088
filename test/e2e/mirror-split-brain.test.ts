// Split brain made on purpose: engine A writes leg 0 while leg 1 is away, then engine B (a fresh
// state dir, --degraded) writes leg 1 while leg 0 is away. When A assembles both legs again it
// serves nothing and says why (text, JSON, event), naming both legs and their generations.
// `node resolve --keep 1` makes leg 0 identical to leg 1, copying only the regions that differ.
// `node resolve` on a mirror without split brain is refused.
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
const block = (r: number): number => (r * REGION) / 4096;

test('split brain: refused with both generations named; resolve --keep 1 copies only what differs', async (t) => {
  const { exp, legs } = await startLegs(t, [12 * M, 12 * M]);
  const remotes = legs.flatMap((l) => ['--remote', l.listen]);
  const a = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K'], ['--leg-timeout', '500ms']);
  await waitLegStates(a.rem, ['in-sync', 'in-sync']);
  await exp.dstJson(['node', 'stop', 'leg1', '--force']);
  await a.nbd.write(2 * REGION, blockContent(block(2), 1)); // only leg 0 has it
  await waitLegStates(a.rem, ['in-sync', 'behind']);
  a.nbd.close();
  await a.rem.dstJson(['node', 'stop', 'vol']);

  await exp.dstJson(['node', 'start', 'leg1']);
  await exp.dstJson(['node', 'stop', 'leg0', '--force']);
  const b = await startEngine(t);
  await b.dstJson(['node', 'add', 'vol', '--layout', 'mirror', ...remotes]);
  await b.dstJson(['node', 'set', 'vol', '--leg-timeout', '500ms']);
  const bShow = await b.dstJson<NodeShow>(['node', 'start', 'vol', '--degraded', '--wait', '10s']);
  const bNbd = await NbdClient.connect(bShow.nbd!.socket);
  await bNbd.write(5 * REGION, blockContent(block(5), 2)); // only leg 1 has it
  const marked = await waitLegStates(b, ['connecting', 'in-sync']); // leg 0 never reached by B
  assert.equal(marked.legs![0]!.outOfSyncBytes, REGION);
  bNbd.close();
  await b.dstJson(['node', 'stop', 'vol']);
  await exp.dstJson(['node', 'start', 'leg0']);

  const events = await a.rem.events({ node: 'vol' });
  t.after(() => events.close());
  const r = await a.rem.dstFail(['node', 'start', 'vol', '--wait', '5s'], 1);
  assert.match(r.stderr, /split-brain/);
  const sb = await events.waitFor((e) => e.event === 'split-brain', 10_000, 'the split-brain event');
  assert.deepEqual(sb.legs, [0, 1]);
  assert.equal(sb.generations?.length, 2);
  assert.notEqual(sb.generations![0], sb.generations![1]);
  const show = await a.rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(show.state, 'failed');
  assert.equal(show.reason, 'split-brain');
  assert.equal(show.nbd, null, 'nothing is served');
  await a.rem.waitForLog(/split brain: leg 0 \(\S+\) holds generation [0-9a-f]{16}, leg 1 \(\S+\) holds generation [0-9a-f]{16}/);
  const text = await a.rem.dst(['node', 'show', 'vol']);
  assert.match(text.stdout, /split-brain/);

  const resolved = await a.rem.dstJson<NodeShow>(['node', 'resolve', 'vol', '--keep', '1']);
  assert.notEqual(resolved.reason, 'split-brain');
  const synced = await waitLegStates(a.rem, ['in-sync', 'in-sync']);
  const leg0 = synced.legs![0]!.stats;
  assert.equal(leg0.comparedBytes, synced.size, 'leg 0 compared every region');
  assert.equal(leg0.resyncedBytes, 2 * REGION, 'and copied only the two that differ');
  const nbd = await NbdClient.connect(synced.nbd!.socket);
  t.after(() => nbd.close());
  assert.equal(checkBlock(await nbd.read(5 * REGION, 4096), block(5)).version, 2, 'leg 1\'s write survives');
  assert.ok((await nbd.read(2 * REGION, 4096)).every((x) => x === 0), 'leg 0\'s lone write is gone');
  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, synced.size!), 'legs identical');

  const again = await a.rem.dstFail(['node', 'resolve', 'vol', '--keep', '0'], 1);
  assert.match(again.stderr, /vol is not in split brain/);
});
