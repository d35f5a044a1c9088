// Split brain made on purpose: engine A writes leg 0 while leg 1 is away, then engine B (a fresh
// state dir, --degraded) writes leg 1 while leg 0 is away. When A assembles both legs again it
// serves nothing (no NBD client gets in) and says why — the refused start in JSON and text,
// node show (JSON splitBrain and text), node list, the event, the log — naming both legs and the
// generation each one holds.
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
  const aGen = (await waitLegStates(a.rem, ['in-sync', 'behind'])).legs![0]!.generation!;
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
  const bGen = marked.legs![1]!.generation!;
  assert.notEqual(aGen, bGen);
  bNbd.close();
  await b.dstJson(['node', 'stop', 'vol']);
  await exp.dstJson(['node', 'start', 'leg0']);

  const events = await a.rem.events({ node: 'vol' });
  t.after(() => events.close());
  // the start is refused, in JSON and in text, naming both legs, their generations and the way out
  const said = new RegExp(`node start vol: not ready: state failed \\(reason split-brain\\): split brain, leg 0 holds generation ${aGen}, `
    + `leg 1 holds generation ${bGen}, written apart; nothing is served until \`dst node resolve vol --keep LEG\``);
  const r = await a.rem.dstFail(['node', 'start', 'vol', '--wait', '5s'], 1);
  assert.match(r.error?.message ?? '', said);
  const sb = await events.waitFor((e) => e.event === 'split-brain', 10_000, 'the split-brain event');
  assert.deepEqual(sb.legs, [0, 1]);
  assert.deepEqual(sb.generations, [aGen, bGen]);
  const textStart = await a.rem.dst(['node', 'start', 'vol', '--wait', '5s']);
  assert.equal(textStart.code, 1);
  assert.match(textStart.stderr, said);
  const show = await a.rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(show.state, 'failed');
  assert.equal(show.reason, 'split-brain');
  assert.deepEqual(show.splitBrain, { legs: [0, 1], generations: [aGen, bGen] });
  assert.equal(show.nbd, null, 'nothing is served');
  await assert.rejects(NbdClient.connect(a.show.nbd!.socket), 'no NBD client gets to the device');
  await a.rem.waitForLog(new RegExp(`split brain: leg 0 \\(\\S+\\) holds generation ${aGen}, leg 1 \\(\\S+\\) holds generation ${bGen}`));
  const text = await a.rem.dst(['node', 'show', 'vol']);
  assert.match(text.stdout, /^ {2}state +failed \(reason: split-brain\)$/m);
  assert.match(text.stdout, new RegExp(`SPLIT BRAIN: leg 0 \\(generation ${aGen}\\), leg 1 \\(generation ${bGen}\\) were written apart`));
  const list = await a.rem.dst(['node', 'list']);
  assert.match(list.stdout, /^vol\s+remote\s+failed \(split-brain\)\s/m);
  const listed = await a.rem.dstJson<NodeShow[]>(['node', 'list']);
  assert.deepEqual(listed.find((n) => n.name === 'vol')!.splitBrain, { legs: [0, 1], generations: [aGen, bGen] });

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
