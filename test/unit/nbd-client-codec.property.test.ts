// fast-check: the NBD client's reply decoder (issue 17) gives the pieces the server sent however the
// stream is split, and also when reads land in the decoder's landing zone; each chunk's content
// (data, hole, block status, error, error with offset) decodes back to what was encoded; the
// handshake replies (INFO, META_CONTEXT, EXPORT_NAME) and the request header round-trip; malformed
// input (bad magic, unknown cookie, oversize chunk, bad chunk bodies, bad lengths) is a clean BAD_FRAME.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DstError } from '../../src/util/errors.js';
import { Info, OPTION_REPLY_HEADER_SIZE, Opt, ReplyFlag, ReplyType, STRUCTURED_HEADER_SIZE } from '../../src/protocol/nbd.js';
import {
  encodeBlockStatusChunk, encodeErrorChunk, encodeNoneDone, encodeOffsetDataChunk, encodeSimpleReply, encodeStructuredHeader,
} from '../../src/protocol/nbd-replies.js';
import {
  MAX_CHUNK, ReplyDecoder, decodeChunk, decodeExportNameReply, decodeInfoReply, encodeRequestHeader, type ChunkContent, type ReplyPiece,
} from '../../src/protocol/nbd-client-codec.js';
import {
  decodeRepMetaContext, encodeExportNameReply, encodeInfoBlockSize, encodeInfoExport, encodeInfoName, encodeMetaContextRequest, encodeRepMetaContext,
} from '../../src/protocol/nbd-options.js';
import { encodeRequest } from '../../src/protocol/nbd-replies.js';

const cookieBuf = (c: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(c, 4);
  return b;
};

/** NBD error numbers and the errno the client reports for each (EIO beyond NBD's set). */
const NBD_ERRNOS: ReadonlyArray<readonly [number, string]> = [
  [1, 'EPERM'], [5, 'EIO'], [12, 'ENOMEM'], [22, 'EINVAL'], [28, 'ENOSPC'], [75, 'EOVERFLOW'], [95, 'ENOTSUP'], [108, 'ESHUTDOWN'], [999, 'EIO'],
];

/** One reply as the server sends it, the piece the decoder must give, and (a chunk) what its content decodes to. */
type Reply = { wire: Buffer; cookie: number; readLength: number; piece: ReplyPiece; content?: ChunkContent };

function chunk(cookie: number, done: boolean, type: number, payload: Buffer, content: ChunkContent, readLength = 0): Reply {
  const wire = Buffer.concat([encodeStructuredHeader(cookieBuf(cookie), done ? ReplyFlag.DONE : 0, type, payload.length), payload]);
  return { wire, cookie, readLength, piece: { kind: 'chunk', cookie, done, type, payload }, content };
}

function errorOffsetPayload(error: number, message: string, offset: number): Buffer {
  const m = Buffer.from(message, 'utf8');
  const p = Buffer.alloc(6 + m.length + 8);
  p.writeUInt32BE(error, 0);
  p.writeUInt16BE(m.length, 4);
  m.copy(p, 6);
  p.writeBigUInt64BE(BigInt(offset), 6 + m.length);
  return p;
}

const offsetArb = fc.integer({ min: 0, max: 2 ** 40 });
const replyArb: fc.Arbitrary<Reply> = fc.integer({ min: 1, max: 50 }).chain((cookie) => fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((a): Reply => {
    const data = Buffer.from(a);
    return {
      wire: Buffer.concat([encodeSimpleReply(cookieBuf(cookie), 0), data]), cookie, readLength: data.length,
      piece: { kind: 'simple', cookie, error: 0, data: data.length === 0 ? null : data },
    };
  }),
  fc.integer({ min: 1, max: 108 }).map((e): Reply => ({
    wire: encodeSimpleReply(cookieBuf(cookie), e), cookie, readLength: 7, piece: { kind: 'simple', cookie, error: e, data: null },
  })),
  fc.record({ offset: offsetArb, data: fc.uint8Array({ minLength: 1, maxLength: 300 }), done: fc.boolean() }).map((r): Reply => {
    const data = Buffer.from(r.data);
    const wire = Buffer.concat(encodeOffsetDataChunk(cookieBuf(cookie), r.offset, data, r.done));
    const payload = wire.subarray(STRUCTURED_HEADER_SIZE);
    return { wire, cookie, readLength: 0, piece: { kind: 'chunk', cookie, done: r.done, type: ReplyType.OFFSET_DATA, payload },
      content: { type: 'data', offset: r.offset, data } };
  }),
  fc.record({ offset: offsetArb, length: fc.integer({ min: 1, max: 2 ** 32 - 1 }), done: fc.boolean() }).map((r) => {
    const p = Buffer.alloc(12);
    p.writeBigUInt64BE(BigInt(r.offset), 0);
    p.writeUInt32BE(r.length, 8);
    return chunk(cookie, r.done, ReplyType.OFFSET_HOLE, p, { type: 'hole', offset: r.offset, length: r.length });
  }),
  fc.record({ ctx: fc.nat({ max: 2 ** 32 - 1 }), descriptors: fc.array(fc.tuple(fc.integer({ min: 1, max: 2 ** 32 - 1 }), fc.nat(3)), { minLength: 1, maxLength: 8 }) })
    .map((r): Reply => {
      const d = Buffer.alloc(8 * r.descriptors.length);
      r.descriptors.forEach(([length, flags], i) => { d.writeUInt32BE(length, 8 * i); d.writeUInt32BE(flags, 8 * i + 4); });
      const wire = Buffer.concat(encodeBlockStatusChunk(cookieBuf(cookie), r.ctx, d));
      return { wire, cookie, readLength: 0, piece: { kind: 'chunk', cookie, done: true, type: ReplyType.BLOCK_STATUS, payload: wire.subarray(STRUCTURED_HEADER_SIZE) },
        content: { type: 'status', contextId: r.ctx, descriptors: d } };
    }),
  fc.record({ error: fc.constantFrom(...NBD_ERRNOS), message: fc.string({ maxLength: 40 }), done: fc.boolean() }).map((r): Reply => {
    const wire = encodeErrorChunk(cookieBuf(cookie), r.error[0], r.message, r.done);
    return { wire, cookie, readLength: 0, piece: { kind: 'chunk', cookie, done: r.done, type: ReplyType.ERROR, payload: wire.subarray(STRUCTURED_HEADER_SIZE) },
      content: { type: 'error', errno: r.error[1], message: r.message, offset: null } };
  }),
  fc.record({ error: fc.constantFrom(...NBD_ERRNOS), message: fc.string({ maxLength: 40 }), offset: offsetArb, done: fc.boolean() }).map((r) =>
    chunk(cookie, r.done, ReplyType.ERROR_OFFSET, errorOffsetPayload(r.error[0], r.message, r.offset),
      { type: 'error', errno: r.error[1], message: r.message, offset: r.offset })),
  fc.constant<Reply>({ wire: encodeNoneDone(cookieBuf(cookie)), cookie, readLength: 0,
    piece: { kind: 'chunk', cookie, done: true, type: ReplyType.NONE, payload: Buffer.alloc(0) }, content: { type: 'none' } }),
));

function split(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) { out.push(stream.subarray(prev, p)); prev = p; }
  out.push(stream.subarray(prev));
  return out;
}

function decoderFor(replies: Reply[]): ReplyDecoder {
  const lengths = new Map(replies.map((r) => [r.cookie, r.readLength]));
  return new ReplyDecoder({ simpleDataLength: (c) => lengths.get(c) ?? null });
}

function decodeAll(replies: Reply[], chunks: Buffer[]): ReplyPiece[] {
  const d = decoderFor(replies);
  const out = chunks.flatMap((c) => d.push(c));
  assert.equal(d.partial, 0, 'nothing left over');
  return out;
}

/**
 * The stream read the way the link's socket reads it: each read of at most `sizes[i]` bytes goes
 * into the decoder's landing zone when it offers one of at least `min` bytes (and is reported with
 * `landed`), else is pushed.
 */
function decodeLanding(d: ReplyDecoder, stream: Buffer, sizes: number[], min: number): ReplyPiece[] {
  const out: ReplyPiece[] = [];
  for (let at = 0, i = 0; at < stream.length; i++) {
    const want = Math.max(1, sizes.length === 0 ? stream.length : sizes[i % sizes.length]!);
    const zone = d.landingZone(min);
    const n = Math.min(want, stream.length - at, zone?.length ?? Infinity);
    if (zone !== null) {
      assert.ok(zone.length >= min, 'a landing zone is at least min bytes');
      stream.copy(zone, 0, at, at + n);
      out.push(...d.landed(n));
    } else out.push(...d.push(stream.subarray(at, at + n)));
    at += n;
  }
  assert.equal(d.partial, 0, 'nothing left over');
  return out;
}

/** Each cookie once, so the read length a simple reply carries is unambiguous. */
const repliesArb = fc.array(replyArb, { maxLength: 12 }).map((rs) => rs.filter((r, i) => rs.findIndex((x) => x.cookie === r.cookie) === i));

test('replies split anywhere, or read into the landing zone, decode to the pieces that were sent; chunk contents to what was encoded', () => {
  fc.assert(fc.property(repliesArb, fc.array(fc.nat(), { maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 400 }), { maxLength: 8 }),
    fc.constantFrom(1, 8, 64), (replies, cuts, sizes, min) => {
      const stream = Buffer.concat(replies.map((r) => r.wire));
      const sent = replies.map((r) => r.piece);
      assert.deepEqual(decodeAll(replies, [stream]), sent);
      assert.deepEqual(decodeAll(replies, split(stream, cuts)), sent);
      assert.deepEqual(decodeAll(replies, [...stream].map((b) => Buffer.from([b]))), sent);
      assert.deepEqual(decodeLanding(decoderFor(replies), stream, sizes, min), sent);
      for (const r of replies) {
        if (r.piece.kind === 'chunk') assert.deepEqual(decodeChunk(r.piece.type, r.piece.payload), r.content);
      }
    }), { numRuns: 300 });
});

test('landed: more bytes than the zone, or none expected, is a caller bug (RangeError)', () => {
  const d = new ReplyDecoder({ simpleDataLength: () => 100 });
  assert.equal(d.landingZone(1), null, 'between replies there is no zone');
  assert.throws(() => d.landed(1), RangeError);
  d.push(encodeSimpleReply(cookieBuf(1), 0));
  assert.equal(d.landingZone(101), null, 'a zone smaller than min is not offered');
  assert.equal(d.landingZone(100)?.length, 100);
  assert.throws(() => d.landed(101), RangeError);
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

/** The data of an option reply (what the link hands the decoders after the 20-byte header). */
const optionData = (reply: Buffer): Buffer => reply.subarray(OPTION_REPLY_HEADER_SIZE);
const sizeArb = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

test('INFO replies: EXPORT and BLOCK_SIZE round-trip, other infos are "other", bad lengths and huge sizes are BAD_FRAME', () => {
  fc.assert(fc.property(sizeArb, fc.nat(0xffff), fc.tuple(fc.nat(2 ** 32 - 1), fc.nat(2 ** 32 - 1), fc.nat(2 ** 32 - 1)), (size, flags, [min, pref, max]) => {
    assert.deepEqual(decodeInfoReply(optionData(encodeInfoExport(Opt.GO, size, flags))), { type: Info.EXPORT, size, flags });
    assert.deepEqual(decodeInfoReply(optionData(encodeInfoBlockSize(Opt.GO, min, pref, max))),
      { type: Info.BLOCK_SIZE, minimum: min, preferred: pref, maximum: max });
  }), { numRuns: 200 });
  assert.deepEqual(decodeInfoReply(optionData(encodeInfoName(Opt.GO, 'disk'))), { type: 'other', info: Info.NAME });
  const exp = optionData(encodeInfoExport(Opt.GO, 4096, 1));
  badFrame(() => decodeInfoReply(exp.subarray(0, 11)), /NBD_INFO_EXPORT of 11 bytes/);
  badFrame(() => decodeInfoReply(Buffer.concat([exp, Buffer.alloc(1)])), /NBD_INFO_EXPORT of 13 bytes/);
  badFrame(() => decodeInfoReply(optionData(encodeInfoBlockSize(Opt.GO, 1, 2, 3)).subarray(0, 13)), /NBD_INFO_BLOCK_SIZE of 13 bytes/);
  badFrame(() => decodeInfoReply(Buffer.alloc(1)), /NBD_REP_INFO of 1 bytes/);
  const huge = Buffer.from(exp);
  huge.writeBigUInt64BE(2n ** 53n, 2);
  badFrame(() => decodeInfoReply(huge), /too large/);
});

test('META_CONTEXT replies: id and name round-trip; too short or too long is BAD_FRAME', () => {
  fc.assert(fc.property(fc.nat(2 ** 32 - 1), fc.string({ maxLength: 60 }), (id, name) => {
    assert.deepEqual(decodeRepMetaContext(optionData(encodeRepMetaContext(Opt.SET_META_CONTEXT, id, name))), { id, name });
  }), { numRuns: 200 });
  badFrame(() => decodeRepMetaContext(Buffer.alloc(3)), /NBD_REP_META_CONTEXT of 3 bytes/);
  badFrame(() => decodeRepMetaContext(Buffer.alloc(4 + 4096 + 1)), /NBD_REP_META_CONTEXT of 4101 bytes/);
});

test('EXPORT_NAME reply: size and flags round-trip with or without the 124 zeroes; short or huge is BAD_FRAME', () => {
  fc.assert(fc.property(sizeArb, fc.nat(0xffff), fc.boolean(), (size, flags, noZeroes) => {
    assert.deepEqual(decodeExportNameReply(encodeExportNameReply(size, flags, noZeroes)), { size, flags });
  }), { numRuns: 200 });
  badFrame(() => decodeExportNameReply(Buffer.alloc(9)), /of 9 bytes/);
  const huge = encodeExportNameReply(0, 0, true);
  huge.writeBigUInt64BE(2n ** 64n - 1n, 0);
  badFrame(() => decodeExportNameReply(huge), /too large/);
});

test('request header: the same bytes as the server-side test encoder gives for the u32 cookie', () => {
  fc.assert(fc.property(fc.nat(0xffff), fc.nat(0xffff), fc.nat(2 ** 32 - 1), sizeArb, fc.nat(2 ** 32 - 1), (cmd, flags, cookie, offset, length) => {
    assert.deepEqual(encodeRequestHeader(cmd, flags, cookie, offset, length), encodeRequest({ type: cmd, flags, cookie: BigInt(cookie), offset, length }));
  }), { numRuns: 200 });
});
