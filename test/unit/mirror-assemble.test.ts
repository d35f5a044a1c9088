// Assembling a mirror from its record and its legs' metadata: a new mirror over blank legs (leg 0
// the source, the others compare), another mirror's legs refused naming each unless --force-init,
// the newest view chosen by generation with its bits, a blank leg of an existing mirror compared,
// split brain refused, --keep making the survivor's view the mirror's, sessions above all seen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { planAssembly, judgeLateLeg, type AssemblyInput, type LegFound } from '../../src/engine/layout/assemble.js';
import { advance, cloneLineage, genHex, newLineage, type Lineage } from '../../src/engine/layout/lineage.js';
import { blankSnapshot } from '../../src/engine/layout/region-state.js';
import type { MirrorSnapshot } from '../../src/engine/layout/state-codec.js';

const rnd = { bytes: (n: number) => randomBytes(n) };
const M = 1024 * 1024;
const SIZE = 64 * M;

function snap(l: Lineage, mark?: { leg: number; region: number }): MirrorSnapshot {
  const s = blankSnapshot(2, M, SIZE, cloneLineage(l));
  if (mark) s.bits[mark.leg]![mark.region >> 3]! |= 1 << (mark.region & 7);
  return s;
}

const name = (i: number): string => `leg ${i}`;
const meta = (index: number, s: MirrorSnapshot): LegFound => ({ kind: 'meta', index, seq: 1n, snapshot: s, bad: null });

function input(found: LegFound[], over: Partial<AssemblyInput> = {}): AssemblyInput {
  return { name: 'vol', legNames: found.map((_, i) => `leg ${i} (h${i}:1)`), regionSize: M, deviceSize: SIZE, record: null, found, identities: found.map(() => null), opts: {}, rnd, ...over };
}

test('blank legs and no record: a new mirror, leg 0 the source, the others compare', () => {
  const r = planAssembly(input([{ kind: 'blank' }, { kind: 'blank' }]));
  assert.equal(r.kind, 'plan');
  assert.deepEqual(r.kind === 'plan' && r.plan.compare, [1]);
});

test('another mirror\'s leg is refused naming it, unless --force-init', () => {
  const mine = newLineage(2, rnd);
  const theirs = newLineage(2, rnd);
  const found = [meta(0, snap(mine)), meta(1, snap(theirs))];
  assert.throws(() => planAssembly(input(found)), (e: Error) => /leg 1 \(h1:1\) holds the metadata of another mirror \(uuid [0-9a-f]{32}.*--force-init/.test(e.message));
  const r = planAssembly(input(found, { opts: { forceInit: true } }));
  assert.deepEqual(r.kind === 'plan' && r.plan.compare, [1]);
});

test('the leg that went on is the source whatever its position; its bits say what the other misses', () => {
  const base = newLineage(2, rnd);
  const ahead = cloneLineage(base);
  advance(ahead, [1], rnd); // leg 0 went behind, leg 1 wrote region 9
  const r = planAssembly(input([meta(0, snap(base)), meta(1, snap(ahead, { leg: 0, region: 9 }))]));
  assert.equal(r.kind, 'plan');
  if (r.kind !== 'plan') return;
  assert.deepEqual(r.plan.compare, []);
  assert.equal(r.plan.snapshot.lineage.current, ahead.current);
  assert.equal(r.plan.snapshot.bits[0]![1], 1 << 1, 'leg 0 copies region 9 only');
  assert.ok(r.plan.snapshot.lineage.session > ahead.session);
});

test('a blank leg in an existing mirror compares; split brain is refused with both generations', () => {
  const base = newLineage(2, rnd);
  const r = planAssembly(input([meta(0, snap(base)), { kind: 'blank' }]));
  assert.deepEqual(r.kind === 'plan' && r.plan.compare, [1]);
  const a = cloneLineage(base);
  advance(a, [0], rnd);
  const b = cloneLineage(base);
  advance(b, [1], rnd);
  const sb = planAssembly(input([meta(0, snap(a)), meta(1, snap(b))]));
  assert.equal(sb.kind, 'split-brain');
  assert.match(sb.kind === 'split-brain' ? sb.message : '', /leg 0 \(h0:1\) holds generation [0-9a-f]{16}, leg 1 \(h1:1\) holds generation [0-9a-f]{16}.*node resolve vol --keep LEG/);
  const kept = planAssembly(input([meta(0, snap(a)), meta(1, snap(b))], { opts: { keep: 1 } }));
  assert.equal(kept.kind, 'plan');
  if (kept.kind !== 'plan') return;
  assert.deepEqual(kept.plan.compare, [0]);
  assert.ok(kept.plan.snapshot.lineage.history.includes(b.current), 'the survivor\'s history goes on');
});

test('a leg reached late: in the lineage it serves, written apart it is a split brain, unknown it compares', () => {
  const live = newLineage(2, rnd);
  const old = cloneLineage(live);
  advance(live, [0], rnd);
  const meta1 = (s: MirrorSnapshot) => ({ kind: 'meta' as const, index: 1, seq: 1n, snapshot: s, bad: null });
  assert.equal(judgeLateLeg('vol', name, 1, 2, live, meta1(snap(old)), false, null).kind, 'ok');
  const apart = cloneLineage(old);
  advance(apart, [1], rnd);
  const sb = judgeLateLeg('vol', name, 1, 2, live, meta1(snap(apart)), false, null);
  assert.equal(sb.kind, 'split-brain');
  if (sb.kind !== 'split-brain') return;
  // the in-sync leg and the late one, each with the generation it holds (in the same order)
  assert.deepEqual(sb.legs, [0, 1]);
  assert.deepEqual(sb.generations, [genHex(live.current), genHex(apart.legGen[1]!)]);
  assert.match(sb.message, new RegExp(`leg 0 holds generation ${sb.generations[0]}, leg 1 holds generation ${sb.generations[1]}, written apart.*node resolve vol --keep LEG`));
  assert.equal(judgeLateLeg('vol', name, 1, 2, live, { kind: 'blank' }, false, null).kind, 'compare');
  assert.equal(judgeLateLeg('vol', name, 1, 2, live, meta1(snap(newLineage(2, rnd))), false, null).kind, 'refuse');
});

test('a disk the metadata does not list at its position is refused naming it, unless --force-init', () => {
  const l = newLineage(2, rnd);
  const ids = [randomBytes(16), randomBytes(16)];
  l.members = ids.map((b) => Buffer.from(b));
  const found = [{ kind: 'blank' } as LegFound, meta(1, snap(l))];
  const stranger = randomBytes(16);
  assert.throws(() => planAssembly(input(found, { identities: [stranger, ids[1]!] })),
    (e: Error) => new RegExp(`leg 0 \\(h0:1\\) is not a member of mirror ${l.uuid.toString('hex')} \\(its leg 0 is export ${ids[0]!.toString('hex')}`).test(e.message));
  const forced = planAssembly(input(found, { identities: [stranger, ids[1]!], opts: { forceInit: true } }));
  assert.equal(forced.kind, 'plan');
  if (forced.kind !== 'plan') return;
  assert.deepEqual(forced.plan.compare, [0]);
  assert.deepEqual(forced.plan.snapshot.lineage.members[0], stranger, 'the new disk is the member now');
  const same = planAssembly(input(found, { identities: ids }));
  assert.deepEqual(same.kind === 'plan' && same.plan.compare, [0], 'the listed disk, blank, compares');
  assert.equal(judgeLateLeg('vol', name, 0, 2, l, { kind: 'blank' }, false, stranger).kind, 'refuse');
  // an export reinstalled over the same disk: the leg's own metadata says it is the member
  const reinstalled = planAssembly(input([meta(0, snap(l)), meta(1, snap(l))], { identities: [stranger, ids[1]!] }));
  assert.deepEqual(reinstalled.kind === 'plan' && reinstalled.plan.compare, []);
  assert.deepEqual(reinstalled.kind === 'plan' && reinstalled.plan.snapshot.lineage.members[0], stranger);
});
