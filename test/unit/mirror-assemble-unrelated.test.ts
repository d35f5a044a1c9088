// A leg of this mirror that shares no generation with its newest view (removed by `leg del`, then
// given again with the mirror's other legs) is not a split brain: it is refused, naming it and
// what it holds, unless --force-init — at assembly and when it is reached late. The newest view is
// the latest assembly's (the highest session), whatever the leg's position; a member that was
// away when the legs changed still compares.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { judgeLateLeg, planAssembly, type AssemblyInput, type LegFound } from '../../src/engine/layout/assemble.js';
import { cloneLineage, genHex, newLineage } from '../../src/engine/layout/lineage.js';
import { blankSnapshot } from '../../src/engine/layout/region-state.js';
import { withLeg, withoutLeg } from '../../src/engine/layout/reshape.js';
import type { MirrorSnapshot } from '../../src/engine/layout/state-codec.js';

const rnd = { bytes: (n: number) => randomBytes(n) };
const M = 1024 * 1024;
const SIZE = 64 * M;
const name = (i: number): string => `leg ${i} (h${i}:1)`;
const meta = (index: number, s: MirrorSnapshot): LegFound & { kind: 'meta' } => ({ kind: 'meta', index, seq: 1n, snapshot: s, bad: null });

/** A mirror of A and R; R removed by leg del, X appended and caught up: A's view and R's last one. */
function removed(): { now: MirrorSnapshot; old: MirrorSnapshot } {
  const base = newLineage(2, rnd);
  base.session = 1n << 16n;
  const old = blankSnapshot(2, M, SIZE, cloneLineage(base));
  const now = withLeg(withoutLeg(blankSnapshot(2, M, SIZE, cloneLineage(base)), 1, [true], false, rnd).snapshot);
  now.bits[1] = new Uint8Array(now.bits[0]!.length);
  now.compareMask = 0;
  now.lineage.legGen[1] = now.lineage.current;
  now.lineage.session = 3n << 16n; // the assemblies after the leg del
  return { now, old };
}

function input(found: LegFound[], over: Partial<AssemblyInput> = {}): AssemblyInput {
  return { name: 'vol', legNames: found.map((_, i) => name(i)), regionSize: M, deviceSize: SIZE, record: null, found, identities: found.map(() => randomBytes(16)), opts: {}, rnd, ...over };
}

test('assembly: the removed leg is refused naming what it holds (not a split brain), whatever its position', () => {
  const { now, old } = removed();
  const held = `leg 0 \\(h0:1\\) holds this mirror's metadata from before it was removed \\(leg 1, generation ${genHex(old.lineage.legGen[1]!)}; `
    + `no history in common with the mirror now, at generation ${genHex(now.lineage.current)}\\).*--force-init`;
  assert.throws(() => planAssembly(input([meta(1, old), meta(0, now)])), new RegExp(held));
  const forced = planAssembly(input([meta(1, old), meta(0, now)], { opts: { forceInit: true } }));
  assert.deepEqual(forced.kind === 'reorder' && forced.order, [1, 0], 'A is leg 0 by its metadata; the initialised leg takes leg 1');
  const inOrder = planAssembly(input([meta(0, now), meta(1, old)], { opts: { forceInit: true } }));
  assert.equal(inOrder.kind, 'plan');
  if (inOrder.kind !== 'plan') return;
  assert.deepEqual(inOrder.plan.compare, [1], 'the initialised leg compares every region');
  assert.equal(inOrder.plan.snapshot.lineage.current, now.lineage.current, 'the mirror\'s view is A\'s');
});

test('reached late: the removed leg is refused (or initialised with --force-init); a member away when the legs changed compares', () => {
  const { now, old } = removed();
  const r = judgeLateLeg('vol', name, 1, 2, now.lineage, meta(1, old), false, randomBytes(16));
  assert.equal(r.kind, 'refuse');
  assert.match(r.kind === 'refuse' ? r.message : '', /vol: leg 1 \(h1:1\) holds this mirror's metadata from before it was removed .*no history in common.*--force-init/);
  assert.equal(judgeLateLeg('vol', name, 1, 2, now.lineage, meta(1, old), true, randomBytes(16)).kind, 'compare');
  // the mirror holds leg 1 as unknown and lists its export: its old metadata is stale, not foreign
  const id = randomBytes(16);
  const live = cloneLineage(now.lineage);
  live.legGen[1] = 0n;
  live.members[1] = Buffer.from(id);
  assert.equal(judgeLateLeg('vol', name, 1, 2, live, meta(1, old), false, id).kind, 'compare');
});
