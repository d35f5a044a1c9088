// The block-status answer codec (protocol/thin.ts): what is encoded checks and covers what it
// says; any cut, any byte changed is either still a valid answer or a clean DST_ERR_BAD_FRAME;
// clipping never covers more than asked; joining the answers of consecutive pieces covers their
// prefix exactly up to the first short one, with neighbours of the same flags merged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DstError } from '../../src/util/errors.js';
import {
  EXTENT_SIZE, ExtentFlag, MAX_EXTENTS, allData, checkExtents, clipExtents, encodeExtents, extentsLength, joinExtents,
  type ExtentDescriptor,
} from '../../src/protocol/thin.js';

const extent = fc.record({
  length: fc.integer({ min: 1, max: 1 << 24 }),
  flags: fc.constantFrom(0, ExtentFlag.HOLE | ExtentFlag.ZERO, ExtentFlag.ZERO),
});
const extents = fc.array(extent, { minLength: 1, maxLength: 40 });
const sum = (l: readonly ExtentDescriptor[]): number => l.reduce((n, e) => n + e.length, 0);

function decode(b: Buffer): ExtentDescriptor[] {
  const out: ExtentDescriptor[] = [];
  for (let at = 0; at < b.length; at += EXTENT_SIZE) out.push({ length: b.readUInt32BE(at), flags: b.readUInt32BE(at + 4) });
  return out;
}

test('extents: encode → check covers the sum, decodes back', () => {
  fc.assert(fc.property(extents, fc.nat(1000), (list, slack) => {
    const b = encodeExtents(list);
    assert.equal(checkExtents(b, sum(list) + slack), sum(list));
    assert.equal(extentsLength(b), sum(list));
    assert.deepEqual(decode(b), list.map((e) => ({ ...e })));
  }));
});

test('extents: a cut or a changed byte is a valid answer or a clean bad-frame error', () => {
  fc.assert(fc.property(extents, fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }), (list, cut, at, byte) => {
    const whole = encodeExtents(list);
    const b = Buffer.from(whole.subarray(0, cut % (whole.length + 1)));
    if (b.length > 0) b[at % b.length] = byte;
    try {
      const covered = checkExtents(b, sum(list));
      assert.ok(covered <= sum(list) && covered > 0);
    } catch (err) {
      assert.ok(err instanceof DstError && err.code === 'DST_ERR_BAD_FRAME', String(err));
    }
  }));
});

test('extents: an answer past the range, an empty extent, unknown flags, too many extents are refused', () => {
  const bad = (b: Buffer, requested: number): void => assert.throws(() => checkExtents(b, requested), /bad block status answer/);
  bad(encodeExtents([{ length: 4096, flags: 0 }]), 4095);
  bad(encodeExtents([{ length: 0, flags: 0 }]), 4096);
  bad(encodeExtents([{ length: 512, flags: 0x4 }]), 4096);
  bad(Buffer.alloc(0), 4096);
  bad(Buffer.alloc(12), 4096);
  bad(encodeExtents(new Array<ExtentDescriptor>(MAX_EXTENTS + 1).fill({ length: 1, flags: 0 })), 1 << 20);
});

test('extents: clipping covers min(length, sum) with at most `count` extents, as a prefix', () => {
  fc.assert(fc.property(extents, fc.integer({ min: 1, max: 1 << 26 }), fc.integer({ min: 1, max: 50 }), (list, length, count) => {
    const c = decode(clipExtents(encodeExtents(list), length, count));
    assert.ok(c.length >= 1 && c.length <= count);
    assert.ok(sum(c) <= length);
    const whole = sum(list.slice(0, count));
    assert.equal(sum(c), Math.min(length, whole));
    c.forEach((e, i) => {
      assert.equal(e.flags, list[i]!.flags);
      if (i < c.length - 1) assert.equal(e.length, list[i]!.length);
    });
  }));
});

test('extents: joining pieces covers up to the first short piece, neighbours merged', () => {
  fc.assert(fc.property(fc.array(fc.tuple(extents, fc.boolean()), { minLength: 1, maxLength: 8 }), (pieces) => {
    // a piece is "short" when its answer covers less than the piece's length
    const parts = pieces.map(([list]) => encodeExtents(list));
    const lengths = pieces.map(([list, short]) => sum(list) + (short ? 1 : 0));
    const joined = decode(joinExtents(parts, lengths));
    const firstShort = pieces.findIndex(([, short]) => short);
    const used = pieces.slice(0, firstShort === -1 ? pieces.length : firstShort + 1).flatMap(([list]) => list);
    assert.equal(sum(joined), sum(used));
    for (let i = 1; i < joined.length; i++) assert.notEqual(joined[i]!.flags, joined[i - 1]!.flags, 'neighbours with the same flags are merged');
    // the same bytes have the same flags
    const flagAt = (l: readonly ExtentDescriptor[], off: number): number => {
      let at = 0;
      for (const e of l) {
        if (off < at + e.length) return e.flags;
        at += e.length;
      }
      return -1;
    };
    let at = 0;
    for (const e of used) {
      for (const off of [at, at + e.length - 1]) assert.equal(flagAt(joined, off), flagAt(used, off));
      at += e.length;
    }
  }));
});

test('extents: all data covers the range in one extent (at most 4 GiB - 1)', () => {
  assert.deepEqual(decode(allData(1 << 20)), [{ length: 1 << 20, flags: 0 }]);
  assert.deepEqual(decode(allData(2 ** 33)), [{ length: 0xffff_ffff, flags: 0 }]);
});
