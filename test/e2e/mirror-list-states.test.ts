// A real mirror tells the truth about a leg that went away and came back: `node list` says
// `degraded` while the leg is away and `degraded, resyncing` while it catches up; node show has the
// leg's reason, generation and out-of-sync bytes, and its resync's ETA; the leg-state and
// resync-progress events carry the generation, the bytes it misses and the ETA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent } from '../helpers/blocks.js';
import { layoutDevice, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import type { Engine } from '../helpers/engine.js';
import type { NodeShow } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const REGION = 256 * K;
const MISSED = 8; // regions written while leg 1 is away: 2 MiB at a 256K/s cap, about 8 s of resync

/** The STATE cell of vol's row in `node list`. */
async function listState(rem: Engine): Promise<string> {
  const r = await rem.dst(['node', 'list']);
  assert.equal(r.code, 0, r.stderr);
  const [head, ...rows] = r.stdout.split('\n');
  const row = rows.find((l) => l.startsWith('vol '));
  assert.ok(row, r.stdout);
  return row.slice(head!.indexOf('STATE'), head!.indexOf('SIZE')).trim();
}

test('mirror: node list says degraded while a leg is away and resyncing while it catches up; show and events say how far', async (t) => {
  const { exp, legs } = await startLegs(t, [12 * M, 12 * M]);
  const { nbd, rem, show } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K'], ['--reconnect-delay', '200ms']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  // the initial sync (leg 1 compares every region) at full speed; the resync of what leg 1 misses slowly
  await rem.dstJson(['node', 'set', 'vol', '--resync-rate', '256K', '--resync-min-rate', '64K']);
  assert.equal(await listState(rem), 'ready');
  const events = await rem.events({ node: 'vol' });
  t.after(() => events.close());

  await exp.dstJson(['node', 'stop', 'leg1', '--force']);
  for (let r = 0; r < MISSED; r++) await nbd.write(r * 3 * REGION, blockContent((r * 3 * REGION) / 4096, 1));
  const away = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  const [l0, l1] = away.legs!;
  assert.equal(l1!.state, 'behind');
  assert.equal(typeof l1!.reason, 'string', 'why it is behind');
  assert.equal(l0!.reason, null);
  assert.equal(l1!.outOfSyncBytes, MISSED * REGION, 'exactly the regions written while away');
  assert.ok(l0!.generation && l1!.generation && l0!.generation !== l1!.generation, 'the in-sync leg moved to a new generation');
  assert.equal(await listState(rem), 'ready (degraded)');
  const left = await events.waitFor((e) => e.event === 'leg-state' && e.leg === 1 && e.to === 'behind', 10_000, 'leg 1 behind');
  assert.equal(left.generation, l1!.generation, 'the leg-state event carries the generation the leg holds');
  assert.equal(typeof left.outOfSyncBytes, 'number');

  await exp.dstJson(['node', 'start', 'leg1']);
  await waitLegStates(rem, ['in-sync', 'resyncing']);
  assert.equal(await listState(rem), 'ready (degraded, resyncing)');
  const p = await events.waitFor((e) => e.event === 'resync-progress' && e.leg === 1, 10_000, 'resync-progress of leg 1');
  assert.ok(p.etaMs! > 0 && p.bytesPerSecond! > 0, `rate and ETA in the event: ${JSON.stringify(p)}`);
  assert.ok(p.outOfSyncBytes! > 0 && p.outOfSyncBytes! < MISSED * REGION, `what it still misses: ${p.outOfSyncBytes}`);
  assert.equal(p.generation, l1!.generation);
  const during = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  const r = during.legs![1]!;
  assert.ok(r.resync && r.resync.etaMs! > 0 && r.outOfSyncBytes > 0, `node show while behind: ${JSON.stringify(r)}`);
  assert.ok(r.resync.rate <= 256 * K, 'the cap');

  await waitLegStates(rem, ['in-sync', 'in-sync'], 60_000);
  assert.equal(await listState(rem), 'ready');
  const back = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(back.legs![1]!.reason, null);
  assert.equal(back.legs![1]!.generation, back.legs![0]!.generation, 'caught up to the current generation');
  const caught = await events.waitFor((e) => e.event === 'leg-state' && e.leg === 1 && e.to === 'in-sync', 10_000, 'leg 1 in sync');
  assert.equal(caught.outOfSyncBytes, 0);
  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, show.size!), 'the legs hold the same bytes');
});
