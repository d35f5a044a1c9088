// fast-check: with a read target, the NBD client's reply decoder (issue 17) writes a READ's data
// straight into the read's buffer — simple replies and OFFSET_DATA chunks alike, however the
// stream is split, and when the socket's reads land in the decoder's landing zone (the read's own
// buffer: no copy) — and the buffer ends holding exactly what the server sent; OFFSET_DATA outside
// the read is a clean BAD_FRAME error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeOffsetDataChunk, encodeSimpleReply } from '../../src/protocol/nbd-replies.js';
import { ReplyDecoder, type ReplyPiece } from '../../src/protocol/nbd-client-codec.js';

const cookieBuf = (c: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(c, 4);
  return b;
};

function cutsOf(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  return [...points, stream.length].map((p, i, all) => stream.subarray(i === 0 ? 0 : all[i - 1]!, p));
}

test('placed reads: the data lands in the read buffer, split anywhere', () => {
  const READ_AT = 1 << 20;
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 600 }), fc.integer({ min: 1, max: 5 }), fc.boolean(),
    fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), (bytes, parts, simple, cuts, landing) => {
      const data = Buffer.from(bytes);
      const buf = Buffer.alloc(data.length, 0xee);
      const wire = simple ? Buffer.concat([encodeSimpleReply(cookieBuf(7), 0), data])
        : Buffer.concat(Array.from({ length: parts }, (_, i) => {
          const from = Math.floor((i * data.length) / parts);
          const to = Math.floor(((i + 1) * data.length) / parts);
          return to > from ? encodeOffsetDataChunk(cookieBuf(7), READ_AT + from, data.subarray(from, to), false) : [];
        }).flat());
      const d = new ReplyDecoder({ simpleDataLength: () => data.length, readTarget: () => ({ buf, offset: READ_AT }) });
      const pieces = cutsOf(wire, cuts).flatMap((c) => (landing ? land(d, c) : d.push(c)));
      assert.equal(d.partial, 0);
      assert.ok(buf.equals(data), 'the read buffer holds the data');
      for (const p of pieces) {
        if (simple) assert.deepEqual(p, { kind: 'simple', cookie: 7, error: 0, data: null });
        else assert.equal(p.kind, 'placed');
      }
      if (!simple) assert.equal(pieces.reduce((n, p) => n + (p.kind === 'placed' ? p.length : 0), 0), data.length);
    }), { numRuns: 300 });
});

/** One socket read's bytes: into the landing zone as far as it goes (the zone must lie in the read buffer), the rest pushed. */
function land(d: ReplyDecoder, bytes: Buffer): ReplyPiece[] {
  const out: ReplyPiece[] = [];
  for (let at = 0; at < bytes.length;) {
    const zone = d.landingZone(1);
    const n = Math.min(bytes.length - at, zone?.length ?? Infinity);
    if (zone === null) out.push(...d.push(bytes.subarray(at, at + n)));
    else {
      bytes.copy(zone, 0, at, at + n);
      out.push(...d.landed(n));
    }
    at += n;
  }
  return out;
}

test('placed reads: OFFSET_DATA outside the read is refused', () => {
  const buf = Buffer.alloc(4096);
  const d = new ReplyDecoder({ simpleDataLength: () => 4096, readTarget: () => ({ buf, offset: 8192 }) });
  assert.throws(() => d.push(Buffer.concat(encodeOffsetDataChunk(cookieBuf(1), 8192 + 4000, Buffer.alloc(200), true))), /outside the read/);
  const e = new ReplyDecoder({ simpleDataLength: () => 4096, readTarget: () => ({ buf, offset: 8192 }) });
  assert.throws(() => e.push(Buffer.concat(encodeOffsetDataChunk(cookieBuf(1), 4096, Buffer.alloc(16), true))), /outside the read/);
});
