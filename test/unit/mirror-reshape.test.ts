// The mirror's state with a leg removed or appended (pure): renumbering, fresh generations that the
// removed leg shares nothing with, unknown legs, the last in-sync leg, and the verdict on an export
// offered as a new leg.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newLineage, contains, type Random } from '../../src/engine/layout/lineage.js';
import { blankSnapshot } from '../../src/engine/layout/region-state.js';
import { judgeNewLeg, sharesHistory, withLeg, withoutLeg } from '../../src/engine/layout/reshape.js';
import type { MirrorSnapshot } from '../../src/engine/layout/state-codec.js';

let counter = 1;
const rnd: Random = { bytes: (n) => { const b = Buffer.alloc(n); b.writeUInt32BE(counter++, n - 4); return b; } };
const REGION = 1024;
const SIZE = 20 * REGION;

function mirror(legs: number): MirrorSnapshot {
  const s = blankSnapshot(legs, REGION, SIZE, newLineage(legs, rnd));
  s.lineage.members = s.lineage.members.map((_, i) => Buffer.alloc(16, i + 1));
  return s;
}
const marked = (s: MirrorSnapshot, j: number): number => [...s.bits[j]!].reduce((n, b) => n + b.toString(2).replaceAll('0', '').length, 0);

test('removing a leg renumbers the others and starts a history the removed leg has no part in', () => {
  const s = mirror(3);
  s.bits[2]![0] = 0b101; // leg 2 behind: two regions marked
  s.lineage.legGen[2] = 42n;
  s.lineage.history = [42n];
  s.compareMask = 1 << 2;
  const { snapshot: out } = withoutLeg(s, 1, [true, true], false, rnd);
  assert.equal(out.legs, 2);
  assert.deepEqual(out.lineage.members.map((m) => m[0]), [1, 3], 'leg 2 is leg 1 now');
  assert.equal(marked(out, 1), 2, 'its bits move with it');
  assert.equal(out.compareMask, 1 << 1, 'and its compare bit');
  assert.equal(out.lineage.legGen[0], out.lineage.current, 'the in-sync leg holds the new generation');
  assert.ok(contains(out.lineage, out.lineage.legGen[1]!), 'the behind leg\'s fresh generation is an ancestor');
  assert.ok(!sharesHistory(out.lineage, s.lineage), 'the removed leg\'s view shares no generation with the mirror now');
});

test('a leg that stays but is not connected is held as unknown; the last in-sync leg needs force', () => {
  const s = mirror(3);
  const { snapshot: out } = withoutLeg(s, 0, [true, false], false, rnd);
  assert.equal(out.lineage.legGen[1], 0n);
  assert.equal(marked(out, 1), SIZE / REGION, 'every region marked');
  assert.ok((out.compareMask & 2) !== 0);

  const two = mirror(2);
  two.bits[1]![0] = 1;
  assert.throws(() => withoutLeg(two, 0, [true], false, rnd), /removing leg 0 leaves no connected leg in sync.*--force/);
  const forced = withoutLeg(two, 0, [true], true, rnd);
  assert.equal(marked(forced.snapshot, 0), 0, 'the forced source is taken as it is');
  assert.match(forced.notes[0]!, /the regions it missed are lost/);
});

test('an appended leg is unknown: every region marked, compared, generation 0', () => {
  const s = mirror(2);
  const out = withLeg(s);
  assert.equal(out.legs, 3);
  assert.equal(out.lineage.legGen[2], 0n);
  assert.equal(marked(out, 2), SIZE / REGION);
  assert.ok((out.compareMask & 4) !== 0);
  assert.equal(s.legs, 2, 'the input is not changed');
});

test('an export offered as a new leg: blank accepted, mirror metadata refused unless --force-init', () => {
  const live = mirror(2);
  assert.deepEqual(judgeNewLeg('leg 2 (x)', live.lineage, { kind: 'blank' }, false), { kind: 'ok', note: null, wipe: false });
  const other = mirror(2);
  const foreign = judgeNewLeg('leg 2 (x)', live.lineage, { kind: 'meta', index: 1, seq: 1n, snapshot: other, bad: null }, false);
  assert.equal(foreign.kind, 'refuse');
  assert.match((foreign as { message: string }).message, /the metadata of another mirror .*--force-init/);
  const forced = judgeNewLeg('leg 2 (x)', live.lineage, { kind: 'meta', index: 1, seq: 1n, snapshot: other, bad: null }, true);
  assert.equal(forced.kind === 'ok' && forced.wipe, true);
  const removed = withoutLeg(live, 1, [true], false, rnd).snapshot;
  const readd = judgeNewLeg('leg 1 (x)', removed.lineage, { kind: 'meta', index: 1, seq: 1n, snapshot: live, bad: null }, false);
  assert.match((readd as { message: string }).message, /from before it was removed .*no history in common/);
  assert.equal(judgeNewLeg('leg 1 (x)', live.lineage, { kind: 'io-error' }, true).kind, 'refuse');
});
