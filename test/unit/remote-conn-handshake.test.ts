// The remote connection's handshake without a key: what HELLO carries, the resend-timeout bounds,
// refusals and another suite mapped to close reasons; once ready, IO frames and PING answered.
// FakeClock and an in-memory socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants as os } from 'node:os';
import { Cmd, decodeHello, encodeRefusal } from '../../src/protocol/wire.js';
import { ConnState, refusalReason } from '../../src/engine/remote/conn-state.js';
import { helloReply, makeConn, readyConn } from '../helpers/remote-conn.js';

test('handshake: HELLO carries version 2, export name, session id, rw access, suite none, 32-byte nonce', () => {
  const c = makeConn();
  c.conn.start();
  assert.equal(c.conn.state, ConnState.CONNECTING);
  assert.equal(c.sock.frames.length, 0);
  c.sock.emit('connect');
  assert.equal(c.conn.state, ConnState.HELLO_SENT);
  const hello = decodeHello(c.sock.frames[0]!.payload);
  assert.equal(c.sock.frames[0]!.cmd, Cmd.HELLO);
  assert.equal(hello.version, 2);
  assert.equal(hello.exportName, 'vol');
  assert.deepEqual(hello.sessionId, Buffer.alloc(16, 7));
  assert.equal(hello.access, 3);
  assert.equal(hello.suite, 'none');
  assert.equal(hello.nonce.length, 32);
  c.sock.send(helloReply());
  assert.equal(c.conn.state, ConnState.READY);
  assert.equal(c.ready(), 1);
  assert.equal(c.conn.reply!.size, 1 << 20);
});

test('handshake: connect bounded by resend-timeout', () => {
  const c = makeConn({ resendTimeoutMs: 2000 });
  c.conn.start();
  c.clock.advance(1999);
  assert.equal(c.conn.state, ConnState.CONNECTING);
  c.clock.advance(1);
  assert.equal(c.conn.state, ConnState.CLOSED);
  assert.equal(c.closes[0]!.reason, 'link');
  assert.equal(c.closes[0]!.errno, 'ETIMEDOUT');
  assert.equal(c.sock.destroyed, true);
});

test('handshake: HELLO_REPLY bounded by resend-timeout', () => {
  const c = makeConn({ resendTimeoutMs: 2000 });
  c.conn.start();
  c.clock.advance(1500);
  c.sock.emit('connect');
  c.clock.advance(1999);
  assert.equal(c.conn.state, ConnState.HELLO_SENT);
  c.clock.advance(1);
  assert.equal(c.conn.state, ConnState.CLOSED);
  assert.match(c.closes[0]!.detail, /HELLO_REPLY/);
});

test('handshake: refusal status → reason (EACCES denied, EPROTO suite-mismatch, else link)', () => {
  assert.equal(refusalReason(os.errno.EACCES), 'denied');
  assert.equal(refusalReason(os.errno.EPROTO), 'suite-mismatch');
  assert.equal(refusalReason(os.errno.EIO), 'link');
  assert.equal(refusalReason(os.errno.EPERM, 'taken-over: mirror …'), 'taken-over');
  const c = makeConn();
  c.conn.start();
  c.sock.emit('connect');
  c.sock.send({ cmd: Cmd.HELLO_REPLY, status: os.errno.EACCES, payload: encodeRefusal('address 127.0.0.1 not in the ACL') });
  assert.equal(c.conn.state, ConnState.CLOSED);
  assert.equal(c.closes[0]!.reason, 'denied');
  assert.match(c.closes[0]!.detail, /not in the ACL/);
  assert.equal(c.ready(), 0);
});

test('handshake: reply with another suite → suite-mismatch; socket error → link once', () => {
  const c = makeConn();
  c.conn.start();
  c.sock.emit('connect');
  c.sock.send(helloReply({ suite: 'aes-gcm' }));
  assert.equal(c.closes[0]!.reason, 'suite-mismatch');
  const d = makeConn();
  d.conn.start();
  d.sock.emit('error', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  d.sock.emit('close');
  assert.equal(d.closes.length, 1);
  assert.deepEqual([d.closes[0]!.reason, d.closes[0]!.errno, d.closes[0]!.wasReady], ['link', 'ECONNREFUSED', false]);
});

test('ready: garbage on the wire closes the link; export PING is answered with PONG', async () => {
  const c = await readyConn();
  c.sock.send({ cmd: Cmd.PING, id: 77 });
  const pong = c.sock.frames.find((f) => f.cmd === Cmd.PONG)!;
  assert.equal(pong.id, 77);
  c.sock.emit('data', Buffer.alloc(48, 0x55));
  assert.equal(c.conn.state, ConnState.CLOSED);
  assert.equal(c.closes[0]!.wasReady, true);
});

test('IO frames carry id, op, flags, offset, length, ackedBelow and the write payload', async () => {
  const c = await readyConn();
  c.conn.sendTxn({ id: 9, op: 'write', offset: 4096, length: 3, payload: Buffer.from('xyz'), flags: 1,
    submittedAt: 0, attempts: 1, done: null, place: 'sent' }, 0x03, 7);
  const io = c.sock.frames.find((f) => f.cmd === Cmd.IO)!;
  assert.deepEqual([io.id, io.op, io.flags, io.offset, io.length, io.ackedBelow, io.payload.toString()],
    [9, 2, 3, 4096, 3, 7, 'xyz']);
  c.sock.send({ cmd: Cmd.IO_RESPONSE, op: 2, id: 9 });
  assert.equal(c.responses[0]!.id, 9);
});
