// fast-check: the NBD client's reply decoder (issue 17) gives the same pieces however the stream
// is split; each chunk's content decodes back to what the server encoded; malformed streams
// (bad magic, unknown cookie, oversize chunk, bad chunk bodies) are clean BAD_FRAME errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DstError } from '../../src/util/errors.js';
import { ReplyType } from '../../src/protocol/nbd.js';
import { encodeErrorChunk, encodeNoneDone, encodeOffsetDataChunk, encodeSimpleReply, encodeStructuredHeader } from '../../src/protocol/nbd-replies.js';
import { MAX_CHUNK, ReplyDecoder, decodeChunk, encodeMetaContextRequest, type ReplyPiece } from '../../src/protocol/nbd-client-codec.js';

const cookieBuf = (c: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(c, 4);
  return b;
};

/** One reply as the server sends it, and what the client decoder should give. */
type Reply = { wire: Buffer; cookie: number; readLength: number };

const replyArb: fc.Arbitrary<Reply> = fc.integer({ min: 1, max: 50 }).chain((cookie) => fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((a) => ({ wire: Buffer.concat([encodeSimpleReply(cookieBuf(cookie), 0), Buffer.from(a)]), cookie, readLength: a.length })),
  fc.integer({ min: 1, max: 108 }).map((e) => ({ wire: encodeSimpleReply(cookieBuf(cookie), e), cookie, readLength: 7 })),
  fc.record({ offset: fc.integer({ min: 0, max: 2 ** 40 }), data: fc.uint8Array({ minLength: 1, maxLength: 300 }), done: fc.boolean() })
    .map((r) => ({ wire: Buffer.concat(encodeOffsetDataChunk(cookieBuf(cookie), r.offset, Buffer.from(r.data), r.done)), cookie, readLength: 0 })),
  fc.record({ error: fc.constantFrom(1, 5, 12, 22, 28, 75, 95, 108, 999), message: fc.string({ maxLength: 40 }) })
    .map((r) => ({ wire: encodeErrorChunk(cookieBuf(cookie), r.error, r.message), cookie, readLength: 0 })),
  fc.constant({ wire: encodeNoneDone(cookieBuf(cookie)), cookie, readLength: 0 }),
));

function split(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) { out.push(stream.subarray(prev, p)); prev = p; }
  out.push(stream.subarray(prev));
  return out;
}

function decodeAll(replies: Reply[], chunks: Buffer[]): ReplyPiece[] {
  const lengths = new Map(replies.map((r) => [r.cookie, r.readLength]));
  const d = new ReplyDecoder({ simpleDataLength: (c) => lengths.get(c) ?? null });
  const out = chunks.flatMap((c) => d.push(c));
  assert.equal(d.partial, 0, 'nothing left over');
  return out;
}

/** Each cookie once, so the read length a simple reply carries is unambiguous. */
const repliesArb = fc.array(replyArb, { maxLength: 12 }).map((rs) => rs.filter((r, i) => rs.findIndex((x) => x.cookie === r.cookie) === i));

test('replies split anywhere decode to the same pieces as in one piece', () => {
  fc.assert(fc.property(repliesArb, fc.array(fc.nat(), { maxLength: 20 }), (replies, cuts) => {
    const stream = Buffer.concat(replies.map((r) => r.wire));
    const whole = decodeAll(replies, [stream]);
    assert.equal(whole.length, replies.length);
    assert.deepEqual(decodeAll(replies, split(stream, cuts)), whole);
    assert.deepEqual(decodeAll(replies, [...stream].map((b) => Buffer.from([b]))), whole);
    whole.forEach((p, i) => {
      assert.equal(p.cookie, replies[i]!.cookie);
      if (p.kind === 'chunk') decodeChunk(p.type, p.payload); // every chunk the server encodes decodes
    });
  }), { numRuns: 300 });
});

test('chunk contents round-trip: data, error (NBD errno → symbolic, EIO beyond NBD\'s set)', () => {
  const d = new ReplyDecoder({ simpleDataLength: () => 0 });
  const [data] = d.push(Buffer.concat(encodeOffsetDataChunk(cookieBuf(3), 4096, Buffer.from('abc'), true)));
  assert.ok(data?.kind === 'chunk' && data.done);
  assert.deepEqual(decodeChunk(data.type, data.payload), { type: 'data', offset: 4096, data: Buffer.from('abc') });
  for (const [n, name] of [[1, 'EPERM'], [28, 'ENOSPC'], [95, 'ENOTSUP'], [7, 'EIO']] as const) {
    const [p] = d.push(encodeErrorChunk(cookieBuf(3), n, 'no'));
    assert.ok(p?.kind === 'chunk');
    assert.deepEqual(decodeChunk(p.type, p.payload), { type: 'error', errno: name, message: 'no', offset: null });
  }
  const hole = Buffer.alloc(12);
  hole.writeUInt32BE(512, 8);
  assert.deepEqual(decodeChunk(ReplyType.OFFSET_HOLE, hole), { type: 'hole', offset: 0, length: 512 });
  const status = Buffer.from([0, 0, 0, 9, 0, 0, 2, 0, 0, 0, 0, 3]);
  assert.deepEqual(decodeChunk(ReplyType.BLOCK_STATUS, status), { type: 'status', contextId: 9, descriptors: status.subarray(4) });
});

test('SET_META_CONTEXT payload: name, count, queries', () => {
  assert.deepEqual([...encodeMetaContextRequest('ex', ['base:allocation'])],
    [0, 0, 0, 2, 0x65, 0x78, 0, 0, 0, 1, 0, 0, 0, 15, ...Buffer.from('base:allocation')]);
});

function badFrame(fn: () => unknown, why: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof DstError && err.code === 'DST_ERR_BAD_FRAME' && why.test(err.message));
}

test('malformed: bad magic, unknown cookie, oversize chunk, bad chunk bodies → BAD_FRAME', () => {
  const known = (): ReplyDecoder => new ReplyDecoder({ simpleDataLength: (c) => (c === 1 ? 0 : null) });
  badFrame(() => known().push(Buffer.from([1, 2, 3, 4, 5])), /magic/);
  badFrame(() => known().push(encodeSimpleReply(cookieBuf(2), 0)), /unknown cookie/);
  const high = encodeSimpleReply(cookieBuf(1), 0);
  high.writeUInt32BE(1, 8);
  badFrame(() => known().push(high), /unknown cookie/);
  badFrame(() => known().push(encodeStructuredHeader(cookieBuf(1), 1, ReplyType.OFFSET_DATA, MAX_CHUNK + 1)), /at most/);
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 40 }), (type, body) => {
    try {
      decodeChunk(type, Buffer.from(body));
    } catch (err) {
      assert.ok(err instanceof DstError && err.code === 'DST_ERR_BAD_FRAME', String(err));
    }
  }), { numRuns: 500 });
  badFrame(() => decodeChunk(0x1234, Buffer.alloc(0)), /unknown NBD structured reply type/);
  badFrame(() => decodeChunk(ReplyType.ERROR, Buffer.from([0, 0, 0, 0, 0, 0])), /error 0/);
});
