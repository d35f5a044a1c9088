// fast-check: the NBD backend's aligner (issue 17) in front of a fake server with a minimum block:
// the server only ever sees aligned requests; concurrent unaligned writes and zeroes, answered in
// a random order, leave the disk as if they had run one at a time in arrival order (the range lock
// keeps a read-modify-write from undoing a concurrent write); unaligned reads read exactly the range.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BlockAligner, type AlignedIo } from '../../src/engine/export/nbd-align.js';

const DISK = 8192;

type Op = { kind: 'write'; offset: number; data: Buffer } | { kind: 'zero'; offset: number; length: number };

const rangeArb = fc.integer({ min: 0, max: DISK - 1 }).chain((offset) => fc.integer({ min: 1, max: Math.min(1500, DISK - offset) }).map((length) => ({ offset, length })));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  rangeArb.chain((r) => fc.integer({ min: 1, max: 255 }).map((v): Op => ({ kind: 'write', offset: r.offset, data: Buffer.alloc(r.length, v) }))),
  rangeArb.map((r): Op => ({ kind: 'zero', ...r })),
);

/** A server over `disk` that requires alignment to `min`, answering after `delays` (cycled) event-loop turns. */
function fakeServer(disk: Buffer, min: number, delays: number[]): AlignedIo {
  let i = 0;
  const later = async (): Promise<void> => {
    for (let n = delays.length === 0 ? 0 : delays[i++ % delays.length]!; n > 0; n--) await new Promise((r) => setImmediate(r));
  };
  const aligned = (offset: number, length: number): void => {
    assert.ok(offset % min === 0 && length % min === 0 && length > 0, `unaligned request [${offset}, +${length}) for minimum ${min}`);
  };
  return {
    async read(offset, into) {
      aligned(offset, into.length);
      await later();
      disk.copy(into, 0, offset, offset + into.length);
    },
    async write(offset, data) {
      aligned(offset, data.length);
      const copy = Buffer.from(data); // what was sent, whenever it lands
      await later();
      copy.copy(disk, offset);
    },
  };
}

test('aligner: only aligned requests reach the server; concurrent unaligned writes and zeroes end as in arrival order', async () => {
  await fc.assert(fc.asyncProperty(fc.constantFrom(512, 1024, 4096), fc.array(opArb, { minLength: 1, maxLength: 12 }),
    fc.array(fc.nat(4), { maxLength: 16 }), rangeArb, async (min, ops, delays, probe) => {
      const disk = Buffer.alloc(DISK, 0x77);
      const expected = Buffer.from(disk);
      const a = new BlockAligner(min);
      const io = fakeServer(disk, min, delays);
      const zeros = (n: number): Buffer => Buffer.alloc(n);
      await Promise.all(ops.map((op) => (op.kind === 'write'
        ? a.locked(op.offset, op.data.length, () => a.merge(op.offset, op.data, io))
        : a.locked(op.offset, op.length, () => a.zero(op.offset, op.length, zeros, io, (o, n) => io.write(o, Buffer.alloc(n)))))));
      for (const op of ops) {
        if (op.kind === 'write') op.data.copy(expected, op.offset);
        else expected.fill(0, op.offset, op.offset + op.length);
      }
      assert.ok(disk.equals(expected), 'the disk is what the writes in arrival order make it');
      const got = Buffer.alloc(probe.length);
      await a.read(probe.offset, got, io);
      assert.ok(got.equals(expected.subarray(probe.offset, probe.offset + probe.length)), 'an unaligned read reads its range');
    }), { numRuns: 200 });
});
