// NBD codec: byte-exact constants, encoder fixtures, decoder phases and bounds, errno mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DstError } from '../../src/util/errors.js';
import {
  NBD_MAGIC, NBD_IHAVEOPT, NBD_OPTION_REPLY_MAGIC, NBD_REQUEST_MAGIC, NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC, NBD_EXTENDED_REQUEST_MAGIC, Opt, Rep, Info, TxFlag, Cmd, CmdFlag, ReplyType, ReplyFlag,
  NbdErr, HandshakeFlag, ClientFlag, MAX_PAYLOAD, MAX_OPTION_DATA, toNbdError, optName, cmdName, repName, nbdErrName,
} from '../../src/protocol/nbd.js';
import { NbdServerDecoder } from '../../src/protocol/nbd-decoder.js';
import {
  encodeGreeting, decodeGreeting, encodeOptionReply, decodeOptionReplyHeader, encodeOptionAck, encodeOptionError,
  encodeRepServer, encodeInfoExport, encodeInfoName, encodeInfoBlockSize, encodeExportNameReply, encodeClientFlags,
  encodeOption, encodeInfoRequest, parseInfoRequest,
} from '../../src/protocol/nbd-options.js';
import {
  encodeSimpleReply, decodeSimpleReply, encodeOffsetDataChunk, encodeNoneDone, encodeErrorChunk,
  decodeStructuredHeader, encodeRequest,
} from '../../src/protocol/nbd-replies.js';

const isBadFrame = (e: unknown): boolean => e instanceof DstError && e.code === 'DST_ERR_BAD_FRAME';
const cookie = Buffer.from('0102030405060708', 'hex');

test('constants are the wire values of proto.md', () => {
  assert.equal(NBD_MAGIC, 0x4e42444d41474943n);
  assert.equal(Buffer.from('NBDMAGIC').readBigUInt64BE(0), NBD_MAGIC);
  assert.equal(Buffer.from('IHAVEOPT').readBigUInt64BE(0), NBD_IHAVEOPT);
  assert.equal(NBD_OPTION_REPLY_MAGIC, 0x0003e889045565a9n);
  assert.equal(NBD_REQUEST_MAGIC, 0x25609513);
  assert.equal(NBD_EXTENDED_REQUEST_MAGIC, 0x21e41c71);
  assert.equal(NBD_SIMPLE_REPLY_MAGIC, 0x67446698);
  assert.equal(NBD_STRUCTURED_REPLY_MAGIC, 0x668e33ef);
  assert.deepEqual([Opt.EXPORT_NAME, Opt.ABORT, Opt.LIST, Opt.STARTTLS, Opt.INFO, Opt.GO, Opt.STRUCTURED_REPLY,
    Opt.LIST_META_CONTEXT, Opt.SET_META_CONTEXT, Opt.EXTENDED_HEADERS], [1, 2, 3, 5, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual([Rep.ACK, Rep.SERVER, Rep.INFO, Rep.META_CONTEXT], [1, 2, 3, 4]);
  assert.equal(Rep.ERR_UNSUP, 0x80000001);
  assert.equal(Rep.ERR_INVALID, 0x80000003);
  assert.equal(Rep.ERR_UNKNOWN, 0x80000006);
  assert.equal(Rep.ERR_EXT_HEADER_REQD, 0x8000000a);
  assert.deepEqual([Info.EXPORT, Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE], [0, 1, 2, 3]);
  assert.deepEqual([TxFlag.HAS_FLAGS, TxFlag.READ_ONLY, TxFlag.SEND_FLUSH, TxFlag.SEND_FUA, TxFlag.ROTATIONAL,
    TxFlag.SEND_TRIM, TxFlag.SEND_WRITE_ZEROES, TxFlag.SEND_DF, TxFlag.CAN_MULTI_CONN, TxFlag.SEND_RESIZE,
    TxFlag.SEND_CACHE, TxFlag.SEND_FAST_ZERO], [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]);
  assert.deepEqual([Cmd.READ, Cmd.WRITE, Cmd.DISC, Cmd.FLUSH, Cmd.TRIM, Cmd.CACHE, Cmd.WRITE_ZEROES, Cmd.BLOCK_STATUS],
    [0, 1, 2, 3, 4, 5, 6, 7]);
  // 16-bit wire values, NOT the kernel's `<< 16` packing (reference §13.2)
  assert.deepEqual([CmdFlag.FUA, CmdFlag.NO_HOLE, CmdFlag.DF, CmdFlag.REQ_ONE, CmdFlag.FAST_ZERO, CmdFlag.PAYLOAD_LEN],
    [1, 2, 4, 8, 16, 32]);
  assert.equal(ReplyType.BLOCK_STATUS, 5); // reference §13.1
  assert.equal(ReplyType.ERROR, 0x8001);
  assert.equal(ReplyFlag.DONE, 1);
  assert.deepEqual({ ...NbdErr }, { OK: 0, EPERM: 1, EIO: 5, ENOMEM: 12, EINVAL: 22, ENOSPC: 28, EOVERFLOW: 75, ENOTSUP: 95, ESHUTDOWN: 108 });
  assert.deepEqual([HandshakeFlag.FIXED_NEWSTYLE, HandshakeFlag.NO_ZEROES, ClientFlag.C_FIXED_NEWSTYLE, ClientFlag.C_NO_ZEROES], [1, 2, 1, 2]);
  assert.equal(MAX_PAYLOAD, 33554432);
});

test('greeting: NBDMAGIC IHAVEOPT flags, 18 bytes', () => {
  const g = encodeGreeting();
  assert.equal(g.toString('hex'), '4e42444d41474943' + '49484156454f5054' + '0003');
  assert.deepEqual(decodeGreeting(g), { handshakeFlags: 3 });
  assert.throws(() => decodeGreeting(Buffer.alloc(18)), isBadFrame);
});

test('option replies: header layout, errors with message, SERVER, INFO', () => {
  const ack = encodeOptionAck(Opt.GO);
  assert.equal(ack.toString('hex'), '0003e889045565a9' + '00000007' + '00000001' + '00000000');
  assert.deepEqual(decodeOptionReplyHeader(ack), { option: 7, type: 1, length: 0 });

  const err = encodeOptionError(Opt.EXTENDED_HEADERS, Rep.ERR_UNSUP, 'nope');
  assert.deepEqual(decodeOptionReplyHeader(err), { option: 11, type: 0x80000001, length: 4 });
  assert.equal(err.subarray(20).toString(), 'nope');
  assert.equal(encodeOptionError(1, Rep.ERR_INVALID, 'x'.repeat(10000)).length, 20 + 4096);

  const srv = encodeRepServer(Opt.LIST, 'vol');
  assert.deepEqual(decodeOptionReplyHeader(srv), { option: 3, type: Rep.SERVER, length: 7 });
  assert.equal(srv.subarray(20).toString('hex'), '00000003' + Buffer.from('vol').toString('hex'));

  const ex = encodeInfoExport(Opt.GO, 0x123456789a, 0x4d);
  assert.deepEqual(decodeOptionReplyHeader(ex), { option: 7, type: Rep.INFO, length: 12 });
  assert.equal(ex.subarray(20).toString('hex'), '0000' + '000000123456789a' + '004d');

  const bs = encodeInfoBlockSize(Opt.INFO, 1, 4096, MAX_PAYLOAD);
  assert.deepEqual(decodeOptionReplyHeader(bs), { option: 6, type: Rep.INFO, length: 14 });
  assert.equal(bs.subarray(20).toString('hex'), '0003' + '00000001' + '00001000' + '02000000');

  const nm = encodeInfoName(Opt.GO, 'vol');
  assert.deepEqual(decodeOptionReplyHeader(nm), { option: 7, type: Rep.INFO, length: 5 });
  assert.equal(nm.subarray(20).toString('hex'), '0001' + Buffer.from('vol').toString('hex'));

  assert.equal(encodeOptionReply(9, Rep.META_CONTEXT, Buffer.from([1, 2])).length, 22);
});

test('EXPORT_NAME reply: 134 bytes, or 10 with NO_ZEROES', () => {
  const full = encodeExportNameReply(4096, 0x0003, false);
  assert.equal(full.length, 134);
  assert.equal(full.subarray(0, 10).toString('hex'), '0000000000001000' + '0003');
  assert.ok(full.subarray(10).every((b) => b === 0));
  assert.equal(encodeExportNameReply(4096, 0x0003, true).length, 10);
});

test('simple and structured replies', () => {
  const s = encodeSimpleReply(cookie, NbdErr.EINVAL);
  assert.equal(s.toString('hex'), '67446698' + '00000016' + '0102030405060708');
  assert.deepEqual(decodeSimpleReply(s), { error: 22, cookie });

  const data = [Buffer.from('abc'), Buffer.from('de')];
  const od = encodeOffsetDataChunk(cookie, 512, data, true);
  assert.equal(od.length, 3);
  assert.equal(od[0]!.length, 28);
  assert.deepEqual(decodeStructuredHeader(od[0]!), { flags: ReplyFlag.DONE, type: ReplyType.OFFSET_DATA, cookie, length: 8 + 5 });
  assert.equal(od[0]!.readBigUInt64BE(20), 512n);
  assert.equal(Buffer.concat(od.slice(1)).toString(), 'abcde');
  assert.equal(od[1], data[0]); // zero copy
  assert.deepEqual(decodeStructuredHeader(encodeOffsetDataChunk(cookie, 0, Buffer.from('x'), false)[0]!).flags, 0);
  assert.throws(() => encodeOffsetDataChunk(cookie, 0, [], true));

  const none = encodeNoneDone(cookie);
  assert.equal(none.toString('hex'), '668e33ef' + '0001' + '0000' + '0102030405060708' + '00000000');

  const e = encodeErrorChunk(cookie, NbdErr.EIO, 'boom');
  assert.deepEqual(decodeStructuredHeader(e), { flags: 1, type: ReplyType.ERROR, cookie, length: 10 });
  assert.equal(e.subarray(20).toString('hex'), '00000005' + '0004' + Buffer.from('boom').toString('hex'));
});

test('client-side encoders: flags, option, request', () => {
  assert.equal(encodeClientFlags(3).toString('hex'), '00000003');
  assert.equal(encodeOption(Opt.LIST).toString('hex'), '49484156454f5054' + '00000003' + '00000000');
  const r = encodeRequest({ flags: CmdFlag.FUA, type: Cmd.WRITE, cookie: 0x0102030405060708n, offset: 4096, length: 2, payload: Buffer.from('hi') });
  assert.equal(r.toString('hex'), '25609513' + '0001' + '0001' + '0102030405060708' + '0000000000001000' + '00000002' + '6869');
});

test('INFO/GO payload parse/encode and malformed payloads', () => {
  const p = encodeInfoRequest('vol', [Info.NAME, Info.BLOCK_SIZE, 77]);
  assert.deepEqual(parseInfoRequest(p), { name: 'vol', infos: [1, 3, 77] });
  assert.deepEqual(parseInfoRequest(encodeInfoRequest('')), { name: '', infos: [] });
  assert.throws(() => parseInfoRequest(Buffer.alloc(5)), isBadFrame);
  const bad = Buffer.from(p); bad.writeUInt32BE(100, 0);
  assert.throws(() => parseInfoRequest(bad), isBadFrame);
  assert.throws(() => parseInfoRequest(Buffer.concat([p, Buffer.alloc(1)])), isBadFrame);
});

test('decoder: client flags, options, then requests with payload', () => {
  const d = new NbdServerDecoder();
  assert.equal(d.phase, 'client-flags');
  d.feed(encodeClientFlags(3));
  d.feed(encodeOption(Opt.STRUCTURED_REPLY));
  d.feed(encodeOption(Opt.GO, encodeInfoRequest('vol', [Info.BLOCK_SIZE])));
  assert.deepEqual(d.next(), { kind: 'client-flags', flags: 3 });
  assert.equal(d.phase, 'options');
  assert.deepEqual(d.next(), { kind: 'option', option: Opt.STRUCTURED_REPLY, data: Buffer.alloc(0) });
  const go = d.next();
  assert.equal(go?.kind, 'option');
  assert.deepEqual(parseInfoRequest((go as { data: Buffer }).data), { name: 'vol', infos: [3] });
  assert.equal(d.next(), null);
  d.phase = 'transmission';
  d.feed(encodeRequest({ type: Cmd.WRITE, cookie, offset: 1, length: 3, payload: Buffer.from('xyz') }));
  d.feed(encodeRequest({ type: Cmd.READ, cookie, offset: 2n ** 40n, length: 4096 }));
  d.feed(encodeRequest({ flags: 0xffff, type: 0x1234, cookie, offset: 0, length: 7 })); // no payload for non-WRITE
  assert.deepEqual(d.next(), { kind: 'request', flags: 0, type: Cmd.WRITE, cookie, offset: 1, length: 3, payload: Buffer.from('xyz') });
  assert.deepEqual(d.next(), { kind: 'request', flags: 0, type: Cmd.READ, cookie, offset: 2 ** 40, length: 4096, payload: null });
  assert.deepEqual(d.next(), { kind: 'request', flags: 0xffff, type: 0x1234, cookie, offset: 0, length: 7, payload: null });
  assert.equal(d.next(), null);
  assert.equal(d.buffered, 0);
});

test('decoder: a write payload arriving byte by byte', () => {
  const d = new NbdServerDecoder();
  d.phase = 'transmission';
  const payload = Buffer.from('hello world');
  const bytes = encodeRequest({ type: Cmd.WRITE, cookie, offset: 0, length: payload.length, payload });
  for (let i = 0; i < bytes.length - 1; i++) { d.feed(bytes.subarray(i, i + 1)); assert.equal(d.next(), null); }
  d.feed(bytes.subarray(bytes.length - 1));
  const m = d.next();
  assert.equal(m?.kind, 'request');
  assert.deepEqual((m as { payload: Buffer }).payload, payload);
});

test('decoder: bad option magic, bad request magic, extended request → BAD_FRAME', () => {
  const d1 = new NbdServerDecoder();
  d1.phase = 'options';
  const o = encodeOption(Opt.GO); o[0] ^= 0xff;
  d1.feed(o);
  assert.throws(() => d1.next(), isBadFrame);

  const d2 = new NbdServerDecoder();
  d2.phase = 'transmission';
  const r = encodeRequest({ type: Cmd.READ, cookie, offset: 0, length: 1 }); r[3] ^= 1;
  d2.feed(r);
  assert.throws(() => d2.next(), isBadFrame);

  const d3 = new NbdServerDecoder();
  d3.phase = 'transmission';
  const x = encodeRequest({ type: Cmd.READ, cookie, offset: 0, length: 1 }); x.writeUInt32BE(NBD_EXTENDED_REQUEST_MAGIC, 0);
  d3.feed(x);
  assert.throws(() => d3.next(), /extended/);
});

test('decoder: oversize option data and oversize WRITE are refused from the header alone', () => {
  const d1 = new NbdServerDecoder();
  d1.phase = 'options';
  const h = encodeOption(Opt.GO).subarray(0, 16);
  h.writeUInt32BE(MAX_OPTION_DATA + 1, 12);
  d1.feed(h); // the header only: nothing of the announced data has arrived
  assert.throws(() => d1.next(), isBadFrame);

  const d2 = new NbdServerDecoder();
  d2.phase = 'transmission';
  d2.feed(encodeRequest({ type: Cmd.WRITE, cookie, offset: 0, length: MAX_PAYLOAD + 1 }));
  assert.throws(() => d2.next(), /maximum payload/);

  // exactly the limit is fine (header decodes, then waits for the payload)
  const d3 = new NbdServerDecoder({ maxPayload: 8 });
  d3.phase = 'transmission';
  d3.feed(encodeRequest({ type: Cmd.WRITE, cookie, offset: 0, length: 8 }));
  assert.equal(d3.next(), null);
  // a READ of any length carries no payload and is not a framing error
  const d4 = new NbdServerDecoder();
  d4.phase = 'transmission';
  d4.feed(encodeRequest({ type: Cmd.READ, cookie, offset: 0, length: 0xffffffff }));
  assert.equal(d4.next()?.kind, 'request');
});

test('errno → NBD error mapping (DESIGN §8)', () => {
  assert.equal(toNbdError(null), 0);
  for (const [e, n] of Object.entries({ EPERM: 1, EIO: 5, ENOMEM: 12, EINVAL: 22, ENOSPC: 28, EOVERFLOW: 75, ENOTSUP: 95, EOPNOTSUPP: 95, ESHUTDOWN: 108 })) {
    assert.equal(toNbdError(e), n, e);
  }
  for (const e of ['ETIMEDOUT', 'ENOTCONN', 'ECONNRESET']) assert.equal(toNbdError(e), NbdErr.EIO, e);
  for (const e of ['EROFS', 'EACCES']) assert.equal(toNbdError(e), NbdErr.EPERM, e);
  for (const e of ['EDQUOT', 'EFBIG']) assert.equal(toNbdError(e), NbdErr.ENOSPC, e);
  for (const e of ['ENOENT', 'EBADF', 'EWHATEVER', '']) assert.equal(toNbdError(e), NbdErr.EIO, e);
});

test('names for logs', () => {
  assert.equal(optName(Opt.EXTENDED_HEADERS), 'NBD_OPT_EXTENDED_HEADERS');
  assert.equal(optName(99), 'NBD_OPT_99');
  assert.equal(cmdName(Cmd.WRITE_ZEROES), 'NBD_CMD_WRITE_ZEROES');
  assert.equal(repName(Rep.ERR_UNSUP), 'NBD_REP_ERR_UNSUP');
  assert.equal(nbdErrName(28), 'ENOSPC');
});
