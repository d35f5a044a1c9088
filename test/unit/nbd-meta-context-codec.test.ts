// The meta-context codec: the LIST/SET_META_CONTEXT payload (byte-exact, round trip, each kind of
// malformed payload refused cleanly), NBD_REP_META_CONTEXT, and the BLOCK_STATUS reply chunk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DstError } from '../../src/util/errors.js';
import { MAX_STRING, NBD_STRUCTURED_REPLY_MAGIC, Opt, Rep, ReplyFlag, ReplyType } from '../../src/protocol/nbd.js';
import {
  BASE_ALLOCATION, decodeOptionReplyHeader, decodeRepMetaContext, encodeMetaContextRequest, encodeRepMetaContext,
  parseMetaContextRequest,
} from '../../src/protocol/nbd-options.js';
import { decodeBlockStatus, decodeStructuredHeader, encodeBlockStatusChunk } from '../../src/protocol/nbd-replies.js';
import { ExtentFlag, encodeExtents } from '../../src/protocol/thin.js';

const badFrame = (re: RegExp) => (e: unknown): boolean => e instanceof DstError && e.code === 'DST_ERR_BAD_FRAME' && re.test(e.message);

test('meta context request: byte layout and round trip', () => {
  const b = encodeMetaContextRequest('vol', ['base:', BASE_ALLOCATION]);
  assert.equal(b.toString('hex'), [
    '00000003', Buffer.from('vol').toString('hex'), '00000002',
    '00000005', Buffer.from('base:').toString('hex'), '0000000f', Buffer.from('base:allocation').toString('hex'),
  ].join(''));
  assert.deepEqual(parseMetaContextRequest(b), { name: 'vol', queries: ['base:', 'base:allocation'] });
  assert.deepEqual(parseMetaContextRequest(encodeMetaContextRequest('', [])), { name: '', queries: [] });
  assert.deepEqual(parseMetaContextRequest(encodeMetaContextRequest('é', ['x-a:b', ''])), { name: 'é', queries: ['x-a:b', ''] });
});

test('meta context request: malformed payloads are refused with a reason', () => {
  const u32 = (...v: number[]): Buffer => Buffer.concat(v.map((n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; }));
  assert.throws(() => parseMetaContextRequest(Buffer.alloc(0)), badFrame(/ends before the export name length/));
  assert.throws(() => parseMetaContextRequest(Buffer.alloc(3)), badFrame(/ends before/));
  assert.throws(() => parseMetaContextRequest(u32(5)), badFrame(/export name length 5 exceeds the payload/));
  assert.throws(() => parseMetaContextRequest(u32(0)), badFrame(/ends before the query count/));
  assert.throws(() => parseMetaContextRequest(u32(0, 1)), badFrame(/query count 1 exceeds the payload/));
  assert.throws(() => parseMetaContextRequest(u32(0, 0xffffffff, 0)), badFrame(/query count 4294967295/));
  assert.throws(() => parseMetaContextRequest(u32(0, 1, 9, 0)), badFrame(/query 0 length 9 exceeds the payload/));
  assert.throws(() => parseMetaContextRequest(u32(0, 0, 7)), badFrame(/4 bytes after its queries/));
  const long = Buffer.concat([u32(MAX_STRING + 1), Buffer.alloc(MAX_STRING + 1), u32(0)]);
  assert.throws(() => parseMetaContextRequest(long), badFrame(/export name of 4097 bytes is too long/));
  const longQuery = encodeMetaContextRequest('', ['q'.repeat(MAX_STRING + 1)]);
  assert.throws(() => parseMetaContextRequest(longQuery), badFrame(/query 0 of 4097 bytes is too long/));
  assert.deepEqual(parseMetaContextRequest(encodeMetaContextRequest('n'.repeat(MAX_STRING), [])).name.length, MAX_STRING);
});

test('NBD_REP_META_CONTEXT: id u32 then the name', () => {
  const r = encodeRepMetaContext(Opt.SET_META_CONTEXT, 7, BASE_ALLOCATION);
  assert.deepEqual(decodeOptionReplyHeader(r), { option: Opt.SET_META_CONTEXT, type: Rep.META_CONTEXT, length: 4 + 15 });
  assert.equal(r.subarray(20).toString('hex'), `00000007${Buffer.from(BASE_ALLOCATION).toString('hex')}`);
  assert.deepEqual(decodeRepMetaContext(r.subarray(20)), { id: 7, name: BASE_ALLOCATION });
  assert.throws(() => decodeRepMetaContext(Buffer.alloc(3)), badFrame(/too short/));
});

test('BLOCK_STATUS chunk: DONE, type 5, context id then the descriptors as given; decoded back', () => {
  const cookie = Buffer.from('0102030405060708', 'hex');
  const list = [{ length: 4096, flags: 0 }, { length: 8192, flags: ExtentFlag.HOLE | ExtentFlag.ZERO }];
  const desc = encodeExtents(list);
  const parts = encodeBlockStatusChunk(cookie, 1, desc);
  assert.equal(parts[1], desc, 'the descriptors go out as they are, without a copy');
  const wire = Buffer.concat(parts);
  assert.equal(wire.readUInt32BE(0), NBD_STRUCTURED_REPLY_MAGIC);
  assert.deepEqual(decodeStructuredHeader(wire), { flags: ReplyFlag.DONE, type: ReplyType.BLOCK_STATUS, cookie, length: 4 + 16 });
  assert.equal(wire.subarray(20).toString('hex'), '00000001' + '0000100000000000' + '0000200000000003');
  assert.deepEqual(decodeBlockStatus(wire.subarray(20)), { contextId: 1, extents: list });
  assert.throws(() => decodeBlockStatus(Buffer.alloc(3)), badFrame(/not a context id and whole descriptors/));
  assert.throws(() => decodeBlockStatus(Buffer.alloc(4 + 12)), badFrame(/16 bytes/));
});
