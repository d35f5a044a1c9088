// HELLO MIRROR_CLAIM (field 8: 16-byte mirror UUID, u64 session, big-endian): any claim round-trips
// whatever the order of the fields and however the frame is split on the way; a HELLO without it
// decodes to null, a claim of the wrong size is a malformed HELLO.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  Cmd, FrameDecoder, MIRROR_CLAIM_SIZE, decodeHello, encodeFrame, encodeHello, type Hello,
} from '../../src/protocol/wire.js';

const base: Hello = {
  version: 2, exportName: 'leg0', sessionId: Buffer.alloc(16, 1), access: 3, suite: 'none', keyId: null, nonce: Buffer.alloc(32, 3),
};

const claimArb = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }))
  .map(([uuid, session]) => ({ uuid: Buffer.from(uuid), session }));

/** The TLV fields of a HELLO payload, in order. */
function fields(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < bytes.length; off += 4 + bytes.readUInt16BE(off + 2)) out.push(bytes.subarray(off, off + 4 + bytes.readUInt16BE(off + 2)));
  return out;
}

test('MIRROR_CLAIM: field 8, 24 bytes, uuid then big-endian session', () => {
  const uuid = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const bytes = encodeHello({ ...base, mirrorClaim: { uuid, session: 0x0102030405060708n } });
  const field = fields(bytes).find((f) => f.readUInt16BE(0) === 8)!;
  assert.equal(MIRROR_CLAIM_SIZE, 24);
  assert.deepEqual(field, Buffer.concat([Buffer.from([0, 8, 0, 24]), uuid, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8])]));
  assert.equal(decodeHello(encodeHello(base)).mirrorClaim, null, 'absent: null');
  assert.ok(!fields(encodeHello({ ...base, mirrorClaim: null })).some((f) => f.readUInt16BE(0) === 8), 'null sends no field');
});

test('MIRROR_CLAIM of the wrong size is a malformed HELLO; a claim that is no u64 is not encoded', () => {
  const short = Buffer.concat([encodeHello(base), Buffer.from([0, 8, 0, 16]), Buffer.alloc(16)]);
  assert.throws(() => decodeHello(short), (e: Error & { code?: string }) => e.code === 'DST_ERR_BAD_FRAME' && /mirror claim is 16 bytes, expected 24/.test(e.message));
  assert.throws(() => encodeHello({ ...base, mirrorClaim: { uuid: Buffer.alloc(16), session: 2n ** 64n } }), /not a u64/);
  assert.throws(() => encodeHello({ ...base, mirrorClaim: { uuid: Buffer.alloc(15), session: 1n } }), /uuid is 15 bytes/);
});

test('property: any claim round-trips, whatever the field order and wherever the frame is split', () => {
  fc.assert(fc.property(claimArb, fc.array(fc.nat(), { maxLength: 10 }), fc.boolean(), (claim, cuts, reverse) => {
    const hello: Hello = { ...base, mirrorClaim: claim };
    let payload = encodeHello(hello);
    if (reverse) payload = Buffer.concat(fields(payload).reverse());
    const stream = Buffer.concat(encodeFrame({ cmd: Cmd.HELLO, payload }));
    const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
    const dec = new FrameDecoder();
    const frames = [];
    let prev = 0;
    for (const p of [...points, stream.length]) {
      dec.feed(stream.subarray(prev, p));
      prev = p;
      for (let f = dec.next(); f; f = dec.next()) frames.push(f);
    }
    assert.equal(frames.length, 1);
    assert.deepEqual(decodeHello(frames[0]!.payload), hello);
  }), { numRuns: 300 });
});
