// Generations decide a mirror's direction: the view whose history contains every other view's
// current generation and every leg's own is the newest; none is a split brain. Sessions grow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { advance, cloneLineage, contains, newLineage, nextSession, pickAuthority, type Lineage } from '../../src/engine/layout/lineage.js';

const rnd = { bytes: (n: number) => randomBytes(n) };

test('a leg that went behind holds an ancestor of the others\' generation', () => {
  const l = newLineage(2, rnd);
  const g0 = l.current;
  advance(l, [0], rnd); // leg 1 went behind
  assert.notEqual(l.current, g0);
  assert.deepEqual(l.legGen, [l.current, g0]);
  assert.ok(contains(l, g0) && contains(l, l.current) && !contains(l, 0n));
});

test('the newest view is chosen whatever the leg order; a record older than the legs loses', () => {
  const base = newLineage(2, rnd);
  const behind = cloneLineage(base); // leg 0's view: it was away while leg 1 went on
  const ahead = cloneLineage(base);
  advance(ahead, [1], rnd);
  const claims = [{ leg: 0, lineage: behind }, { leg: 1, lineage: ahead }];
  const a = pickAuthority(null, claims);
  assert.equal(a.kind, 'authority');
  assert.equal(a.kind === 'authority' && a.from, 1);
  const withStaleRecord = pickAuthority(cloneLineage(base), claims);
  assert.equal(withStaleRecord.kind === 'authority' && withStaleRecord.from, 1);
});

test('both legs moved on apart from a common ancestor: split brain naming both generations', () => {
  const base = newLineage(2, rnd);
  const a: Lineage = cloneLineage(base);
  advance(a, [0], rnd);
  const b: Lineage = cloneLineage(base);
  advance(b, [1], rnd);
  const r = pickAuthority(null, [{ leg: 0, lineage: a }, { leg: 1, lineage: b }]);
  assert.equal(r.kind, 'split-brain');
  assert.deepEqual(r.kind === 'split-brain' && r.legs, [0, 1]);
  assert.deepEqual(r.kind === 'split-brain' && r.generations, [a.current, b.current].map((g) => g.toString(16).padStart(16, '0')));
});

test('session numbers: above every one seen, never tied by two engines at once', () => {
  const s1 = nextSession([], rnd);
  const s2 = nextSession([s1, 5n], rnd);
  assert.ok(s2 > s1);
  assert.ok(nextSession([s2], rnd) > s2);
});
