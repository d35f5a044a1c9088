// The layout map: every byte of a linear or stripe device lands on exactly one (leg, offset) inside
// that leg, pieces cover a request in order without gaps, and sizes follow the layout's rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DstError } from '../../src/util/errors.js';
import {
  MIRROR_RESERVED_TAIL, checkPowerOfTwoSize, largerLegs, linearMap, mapRange, mirrorSize, splitSize, stripeMap,
  type SplitMap,
} from '../../src/engine/layout/map.js';

const K = 1024;

/** Where one device byte lives, computed the slow, obvious way. */
function byteHome(m: SplitMap, at: number): { leg: number; legOffset: number } {
  if (m.kind === 'linear') {
    let start = 0;
    for (let leg = 0; leg < m.legSizes.length; leg++) {
      if (at < start + m.legSizes[leg]!) return { leg, legOffset: at - start };
      start += m.legSizes[leg]!;
    }
    throw new Error('past the end');
  }
  const chunk = Math.floor(at / m.chunk);
  return { leg: chunk % m.legs, legOffset: Math.floor(chunk / m.legs) * m.chunk + (at % m.chunk) };
}

const legSizesArb = fc.array(fc.integer({ min: 0, max: 40 }).map((n) => n * 4 * K + (n % 3) * 512), { minLength: 2, maxLength: 5 });
const mapArb: fc.Arbitrary<SplitMap> = fc.oneof(
  legSizesArb.filter((s) => s.some((x) => x > 0)).map((s) => linearMap(s)),
  fc.tuple(legSizesArb.map((s) => s.map((x) => x + 64 * K)), fc.constantFrom(4 * K, 8 * K, 16 * K, 64 * K))
    .map(([s, chunk]) => stripeMap(s, chunk)),
);
const caseArb = mapArb.chain((m) => {
  const size = splitSize(m);
  return fc.integer({ min: 0, max: size }).chain((offset) =>
    fc.integer({ min: 0, max: size - offset }).map((length) => ({ m, offset, length })));
});

test('pieces cover the request in order, each inside its leg, each byte where the slow map says', () => {
  fc.assert(fc.property(caseArb, ({ m, offset, length }) => {
    const pieces = mapRange(m, offset, length);
    let next = 0;
    for (const p of pieces) {
      assert.equal(p.bufferOffset, next, 'no gap or overlap in the request buffer');
      assert.ok(p.length > 0, 'no empty piece');
      const legSize = m.kind === 'linear' ? m.legSizes[p.leg]! : m.legSize;
      assert.ok(p.legOffset >= 0 && p.legOffset + p.length <= legSize, `piece inside leg ${p.leg}`);
      if (m.kind === 'stripe') {
        assert.equal(Math.floor(p.legOffset / m.chunk), Math.floor((p.legOffset + p.length - 1) / m.chunk), 'a piece never crosses a chunk');
      }
      // first and last byte of the piece agree with the byte-by-byte map (the piece is contiguous on its leg)
      for (const d of [0, p.length - 1]) {
        assert.deepEqual(byteHome(m, offset + p.bufferOffset + d), { leg: p.leg, legOffset: p.legOffset + d });
      }
      next += p.length;
    }
    assert.equal(next, length);
  }), { numRuns: 500 });
});

test('the map is one to one: two device bytes never share a leg byte', () => {
  fc.assert(fc.property(mapArb, (m) => {
    const seen = new Set<string>();
    const size = splitSize(m);
    for (let at = 0; at < size; at += 512) {
      const h = byteHome(m, at);
      const key = `${h.leg}:${h.legOffset}`;
      assert.ok(!seen.has(key), `device bytes collide at ${key}`);
      seen.add(key);
    }
    const pieces = mapRange(m, 0, size);
    assert.equal(pieces.reduce((a, p) => a + p.length, 0), size);
  }), { numRuns: 100 });
});

test('linear: the sum in leg order; a request straddling a leg boundary is two pieces', () => {
  const m = linearMap([64 * K, 32 * K, 16 * K]);
  assert.equal(splitSize(m), 112 * K);
  assert.deepEqual(mapRange(m, 60 * K, 8 * K), [
    { leg: 0, legOffset: 60 * K, length: 4 * K, bufferOffset: 0 },
    { leg: 1, legOffset: 0, length: 4 * K, bufferOffset: 4 * K },
  ]);
  assert.deepEqual(mapRange(m, 96 * K, 16 * K), [{ leg: 2, legOffset: 0, length: 16 * K, bufferOffset: 0 }]);
});

test('stripe: N × the smallest leg rounded down to the chunk; chunks rotate over the legs', () => {
  const m = stripeMap([100 * K, 70 * K], 16 * K);
  assert.equal(splitSize(m), 2 * 64 * K);
  assert.deepEqual(mapRange(m, 8 * K, 40 * K), [
    { leg: 0, legOffset: 8 * K, length: 8 * K, bufferOffset: 0 },
    { leg: 1, legOffset: 0, length: 16 * K, bufferOffset: 8 * K },
    { leg: 0, legOffset: 16 * K, length: 16 * K, bufferOffset: 24 * K },
  ]);
});

test('mirror: the smallest leg less the reserved tail; larger legs are named', () => {
  assert.equal(mirrorSize([64 * K * K, 80 * K * K]), 64 * K * K - MIRROR_RESERVED_TAIL);
  assert.equal(mirrorSize([MIRROR_RESERVED_TAIL]), 0);
  assert.deepEqual(largerLegs([64, 80, 64, 65]), [1, 3]);
});

test('bad input: chunk not a power of two, too few legs, a range past the end', () => {
  for (const bad of [3 * K, 2 * K, 0, 6144, 2 ** 31]) {
    assert.throws(() => checkPowerOfTwoSize(bad, 'stripe chunk'), (e: unknown) => e instanceof DstError && /stripe chunk: .* power of two/.test(e.message));
  }
  assert.equal(checkPowerOfTwoSize(512 * K, 'stripe chunk'), 512 * K);
  assert.throws(() => linearMap([64 * K]), /linear layout: needs at least 2 legs, got 1/);
  assert.throws(() => stripeMap([64 * K], 4 * K), /stripe layout: needs at least 2 legs/);
  assert.throws(() => mirrorSize([]), /mirror layout: needs at least 1 leg, got 0/);
  const m = linearMap([8 * K, 8 * K]);
  assert.throws(() => mapRange(m, 12 * K, 8 * K), /range 12288\+8192 is outside the device of 16384 bytes/);
  assert.throws(() => mapRange(m, -1, 1), /outside the device/);
});
