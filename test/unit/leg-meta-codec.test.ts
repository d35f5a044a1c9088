// The legs' metadata copies: a round trip keeps every field; any corrupted byte, a truncation or
// a zeroed header is never taken for a copy; the mirror state body round-trips through its codec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decodeCopy, encodeCopy, metaOffsets, MAX_META_BODY } from '../../src/engine/layout/leg-meta.js';
import { decodeState, encodeState } from '../../src/engine/layout/state-codec.js';
import { advance, newLineage } from '../../src/engine/layout/lineage.js';
import { blankSnapshot } from '../../src/engine/layout/region-state.js';
import { MIRROR_RESERVED_TAIL } from '../../src/engine/layout/map.js';

const rnd = { bytes: (n: number) => randomBytes(n) };
const M = 1024 * 1024;

function sample(): Buffer {
  const l = newLineage(3, rnd);
  advance(l, [0, 2], rnd);
  const s = blankSnapshot(3, M, 1000 * M + 4096, l);
  s.bits[1]![3] = 0x81;
  s.active = [5, 999];
  s.compareMask = 0b010;
  s.clean = false;
  return encodeState(s);
}

test('a state body round-trips, lineage and all', () => {
  const body = sample();
  const s = decodeState(body);
  assert.ok(typeof s === 'object');
  assert.equal(s.legs, 3);
  assert.deepEqual(s.active, [5, 999]);
  assert.equal(s.bits[1]![3], 0x81);
  assert.equal(s.compareMask, 2);
  assert.equal(s.clean, false);
  assert.equal(s.lineage.history.length, 1);
  assert.deepEqual(encodeState(s), body);
});

test('a copy round-trips and is padded to 4 KiB', () => {
  const body = sample();
  const raw = encodeCopy({ index: 2, seq: 77n, body });
  assert.equal(raw.length % 4096, 0);
  const c = decodeCopy(raw);
  assert.ok(c !== null && typeof c === 'object');
  assert.equal(c.index, 2);
  assert.equal(c.seq, 77n);
  assert.deepEqual(c.body, body);
});

test('any flipped byte, a truncation or garbage is refused; zeroes are blank', () => {
  const raw = encodeCopy({ index: 0, seq: 1n, body: sample() });
  const used = 28 + sample().length + 4;
  for (let k = 0; k < 200; k++) {
    const at = Math.floor(Math.random() * used);
    const bad = Buffer.from(raw);
    bad[at]! ^= 1 + Math.floor(Math.random() * 255);
    assert.equal(typeof decodeCopy(bad), 'string', `a flip at ${at} is caught`);
  }
  assert.equal(typeof decodeCopy(raw.subarray(0, used - 1)), 'string');
  assert.equal(typeof decodeCopy(randomBytes(4096)), 'string');
  assert.equal(decodeCopy(Buffer.alloc(4096)), null);
});

test('the copies sit in the leg\'s reserved tail, 4 KiB aligned, and the largest body fits', () => {
  for (const size of [64 * M, 64 * M + 512, 10 * 1024 * M - 4096 * 3]) {
    const [a, b] = metaOffsets(size);
    assert.ok(a >= size - MIRROR_RESERVED_TAIL && a % 4096 === 0 && b % 4096 === 0);
    const biggest = encodeCopy({ index: 0, seq: 1n, body: Buffer.alloc(MAX_META_BODY) });
    assert.ok(b + biggest.length <= size, `copy 1 ends inside a leg of ${size}`);
    assert.ok(a + biggest.length <= b);
  }
});
