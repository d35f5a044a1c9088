// Option negotiation: the greeting, client flags, GO/INFO/LIST/EXPORT_NAME/ABORT/STRUCTURED_REPLY,
// unknown options and exports (meta contexts: nbd-endpoint-meta-context.test.ts). (A raw client
// over the unix socket: test/helpers/nbd-raw-client.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Cmd, CmdFlag, Info, Opt, Rep, ReplyFlag, ReplyType, TxFlag, MAX_PAYLOAD } from '../../src/protocol/nbd.js';
import { encodeInfoRequest, encodeOption } from '../../src/protocol/nbd-options.js';
import { RawClient, fixture, pattern } from '../helpers/nbd-raw-client.js';

test('handshake, GO with NAME and BLOCK_SIZE, write/read, DISC closes', async (t) => {
  const f = await fixture(t);
  assert.equal(f.ep.uri, `nbd+unix:///?socket=${f.path}`);
  assert.equal((await stat(f.path)).mode & 0o777, 0o600);
  assert.equal((await stat(join(f.dir, 'nbd'))).mode & 0o777, 0o700);
  const c = await RawClient.connect(f.path);
  assert.equal(await c.handshake(), 3); // FIXED_NEWSTYLE | NO_ZEROES
  const replies = await c.option(Opt.GO, encodeInfoRequest('vol', [Info.NAME, Info.BLOCK_SIZE, 999]));
  assert.deepEqual(replies.map((r) => r.type), [Rep.INFO, Rep.INFO, Rep.INFO, Rep.ACK]);
  const byInfo = new Map(replies.slice(0, 3).map((r) => [r.data.readUInt16BE(0), r.data]));
  const ex = byInfo.get(Info.EXPORT)!;
  assert.equal(ex.length, 12);
  assert.equal(Number(ex.readBigUInt64BE(2)), 1 << 20);
  const flags = ex.readUInt16BE(10);
  assert.equal(flags, TxFlag.HAS_FLAGS | TxFlag.SEND_FLUSH | TxFlag.SEND_FUA | TxFlag.SEND_TRIM | TxFlag.SEND_WRITE_ZEROES | TxFlag.CAN_MULTI_CONN);
  assert.equal(flags & (TxFlag.READ_ONLY | TxFlag.SEND_DF), 0);
  const bs = byInfo.get(Info.BLOCK_SIZE)!;
  assert.deepEqual([bs.length, bs.readUInt32BE(2), bs.readUInt32BE(6), bs.readUInt32BE(10)], [14, 1, 4096, MAX_PAYLOAD]);
  assert.equal(byInfo.get(Info.NAME)!.subarray(2).toString(), 'vol');
  assert.equal(f.ep.connections, 1);

  const data = pattern(4096);
  const wc = c.send({ type: Cmd.WRITE, flags: CmdFlag.FUA, offset: 8192, length: 4096, payload: data });
  assert.deepEqual(await c.simpleReply(), { error: 0, cookie: wc, data: Buffer.alloc(0) });
  assert.equal(f.target.submitted.at(-1)!.fua, true);
  const rc = c.send({ type: Cmd.READ, cookie: 0xfedcba9876543210n, offset: 8192, length: 4096 });
  const r = await c.simpleReply(4096);
  assert.equal(r.cookie, rc);
  assert.deepEqual(r.data, data);
  c.send({ type: Cmd.FLUSH, offset: 0, length: 0 });
  assert.equal((await c.simpleReply()).error, 0);
  c.send({ type: Cmd.DISC, offset: 0, length: 0 });
  await c.closed;
  assert.equal(c.ended, true);
});

test('INFO does not end negotiation; GO afterwards works', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  const info = await c.option(Opt.INFO, encodeInfoRequest(''));
  assert.deepEqual(info.map((r) => r.type), [Rep.INFO, Rep.INFO, Rep.ACK]);
  const { size } = await (async () => {
    const go = await c.option(Opt.GO, encodeInfoRequest(''));
    assert.equal(go.at(-1)!.type, Rep.ACK);
    return { size: Number(go[0]!.data.readBigUInt64BE(2)) };
  })();
  assert.equal(size, 1 << 20);
  c.send({ type: Cmd.READ, offset: 0, length: 512 });
  assert.equal((await c.simpleReply(512)).error, 0);
  c.destroy();
});

test('LIST returns the one export; LIST with data → ERR_INVALID', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  const list = await c.option(Opt.LIST);
  assert.deepEqual(list.map((r) => r.type), [Rep.SERVER, Rep.ACK]);
  assert.equal(list[0]!.data.readUInt32BE(0), 3);
  assert.equal(list[0]!.data.subarray(4).toString(), 'vol');
  assert.equal((await c.option(Opt.LIST, Buffer.from('x')))[0]!.type, Rep.ERR_INVALID);
  assert.equal((await c.option(Opt.GO, encodeInfoRequest(''))).at(-1)!.type, Rep.ACK);
  c.destroy();
});

test('unknown options, EXTENDED_HEADERS, STARTTLS, PEEK_EXPORT → ERR_UNSUP, then GO still works', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  for (const opt of [Opt.EXTENDED_HEADERS, 99, Opt.STARTTLS, Opt.PEEK_EXPORT, 0x7fffffff]) {
    const r = await c.option(opt, opt === 99 ? Buffer.from('some data') : Buffer.alloc(0));
    assert.equal(r.length, 1);
    assert.equal(r[0]!.type, Rep.ERR_UNSUP, `option ${opt}`);
    assert.ok(r[0]!.data.length > 0, 'error carries a message');
  }
  assert.equal((await c.option(Opt.STRUCTURED_REPLY))[0]!.type, Rep.ACK);
  assert.equal((await c.option(Opt.STRUCTURED_REPLY))[0]!.type, Rep.ERR_INVALID); // repeat
  assert.equal((await c.option(Opt.GO, Buffer.from([0, 0])))[0]!.type, Rep.ERR_INVALID); // malformed
  const go = await c.option(Opt.GO, encodeInfoRequest(''));
  assert.equal(go.at(-1)!.type, Rep.ACK);
  // structured replies are on
  const cookie = c.send({ type: Cmd.READ, offset: 0, length: 16 });
  const ch = await c.chunk();
  assert.deepEqual([ch.type, ch.flags, ch.cookie], [ReplyType.OFFSET_DATA, ReplyFlag.DONE, cookie]);
  c.destroy();
});

test('unknown export: GO/INFO → ERR_UNKNOWN (connection kept); EXPORT_NAME → hard disconnect', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  const r = await c.option(Opt.GO, encodeInfoRequest('other'));
  assert.deepEqual(r.map((x) => x.type), [Rep.ERR_UNKNOWN]);
  assert.equal((await c.option(Opt.INFO, encodeInfoRequest('vol2')))[0]!.type, Rep.ERR_UNKNOWN);
  assert.equal((await c.option(Opt.GO, encodeInfoRequest('vol'))).at(-1)!.type, Rep.ACK);
  c.destroy();

  const d = await RawClient.connect(f.path);
  await d.handshake();
  d.write(encodeOption(Opt.EXPORT_NAME, Buffer.from('nope')));
  await d.closed;
  assert.equal(d.quiet(), true, 'nothing was sent for the refused EXPORT_NAME');
});

test('EXPORT_NAME: 134-byte reply without C_NO_ZEROES, 10 with it', async (t) => {
  const f = await fixture(t, { permissions: 'r' });
  for (const [cflags, len] of [[1, 134], [3, 10]] as const) {
    const c = await RawClient.connect(f.path);
    await c.handshake(cflags);
    c.write(encodeOption(Opt.EXPORT_NAME, Buffer.from(cflags === 1 ? '' : 'vol')));
    const reply = await c.read(len);
    assert.equal(Number(reply.readBigUInt64BE(0)), 1 << 20);
    assert.equal(reply.readUInt16BE(8) & TxFlag.READ_ONLY, TxFlag.READ_ONLY);
    assert.ok(reply.subarray(10).every((b) => b === 0));
    c.send({ type: Cmd.READ, offset: 0, length: 8 });
    assert.equal((await c.simpleReply(8)).error, 0); // in transmission, nothing else was sent
    c.destroy();
  }
});

test('ABORT is acknowledged, then the connection closes; unknown client flags drop it', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  assert.equal((await c.option(Opt.ABORT))[0]!.type, Rep.ACK);
  await c.closed;

  const d = await RawClient.connect(f.path);
  await d.handshake(0x4 | 1);
  await d.closed;
});
