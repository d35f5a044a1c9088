// The remote connection's keyed handshake (DESIGN §9): key id and suite in HELLO, AUTH over the
// transcript, mutual proof, refusals and bounds; then sealed (or digest-tagged) frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants as os } from 'node:os';
import { DEFAULT_CRYPTO, type CryptoConfig, type Policy } from '../../src/engine/types.js';
import {
  Cmd, decodeAuth, decodeHello, encodeAuth, encodeHeader, encodeHelloReply, encodeRefusal,
} from '../../src/protocol/wire.js';
import { authProof, deriveSessionKeys, keyId, open, seal, sealedLength, suiteByName } from '../../src/protocol/suites.js';
import { ConnState, refusalReason } from '../../src/engine/remote/conn-state.js';
import { flush, IDENTITY, helloReply, makeConn } from '../helpers/remote-conn.js';

const GCM: CryptoConfig = { ...DEFAULT_CRYPTO, cipher: 'aes-gcm', cipherKeyFile: '/k' };
const KEY = Buffer.alloc(32, 0x42);

/** Drive a keyed handshake up to our AUTH; returns the pieces a fake export needs. */
async function keyedToAuth(over: Partial<Policy> = {}, key: Buffer | Error = KEY) {
  const c = makeConn(over, { config: GCM, key });
  c.conn.start();
  await flush(); // the key is read before the socket opens
  c.sock.emit('connect');
  assert.equal(c.conn.state, ConnState.HELLO_SENT);
  const helloFrame = c.sock.frames[0]!;
  const hello = decodeHello(helloFrame.payload);
  const suite = suiteByName('aes-gcm');
  const serverNonce = Buffer.alloc(32, 9);
  const reply = helloReply({ suite: 'aes-gcm' });
  const replyPayload = encodeHelloReply({ identity: IDENTITY, size: 1 << 20, blockSize: 512, maxRequest: 1 << 20, granted: 3,
    suite: 'aes-gcm', nonce: serverNonce, message: null, instance: null, features: 0 });
  reply.payload = replyPayload;
  c.sock.send(reply);
  const keys = deriveSessionKeys(suite, KEY, hello.nonce, serverNonce);
  const transcript = Buffer.concat([helloFrame.payload, replyPayload]);
  return { ...c, hello, suite, keys, transcript };
}

test('keyed handshake: suite and key id in HELLO, AUTH over the transcript, mutual proof, then sealed frames', async () => {
  const c = await keyedToAuth();
  assert.equal(c.hello.suite, 'aes-gcm');
  assert.deepEqual(c.hello.keyId, keyId(KEY));
  assert.equal(c.conn.state, ConnState.AUTH_SENT);
  const auth = c.sock.frames.find((f) => f.cmd === Cmd.AUTH)!;
  assert.deepEqual(decodeAuth(auth.payload).proof, authProof(c.keys.confirm, 'client', c.transcript));
  assert.equal(c.ready(), 0);
  c.sock.send({ cmd: Cmd.AUTH, payload: encodeAuth({ proof: authProof(c.keys.confirm, 'server', c.transcript) }) });
  assert.equal(c.conn.state, ConnState.READY);
  assert.equal(c.ready(), 1);
  // from now on every frame is sealed with sequence numbers from 0, each direction
  c.conn.sendTxn({ id: 5, op: 'write', offset: 0, length: 3, payload: Buffer.from('abc'), flags: 0,
    submittedAt: 0, attempts: 1, done: null, place: 'sent' }, 0, 1);
  const io = c.sock.frames.find((f) => f.cmd === Cmd.IO)!;
  assert.equal(io.tagLength, 16);
  assert.deepEqual(open(c.suite, c.keys.clientToServer, 0, io.header, io.payload, io.tag), Buffer.from('abc'));
  const header = encodeHeader({ cmd: Cmd.IO_RESPONSE, op: 2, flags: 0, status: 0, length: 3, id: 5, offset: 0, ackedBelow: 0,
    payloadLength: sealedLength(c.suite, 0), tagLength: 16 });
  const sealed = seal(c.suite, c.keys.serverToClient, 0, header, Buffer.alloc(0));
  c.sock.emit('data', Buffer.concat([header, sealed.tag]));
  assert.equal(c.responses.length, 1);
  assert.equal(c.responses[0]!.id, 5);
  // the same frame again (a replay) is refused: the link closes (the table replays elsewhere)
  c.sock.emit('data', Buffer.concat([header, sealed.tag]));
  assert.equal(c.conn.state, ConnState.CLOSED);
  assert.equal(c.closes[0]!.reason, 'link');
  assert.match(c.closes[0]!.detail, /frame 1 rejected/);
  assert.equal(c.responses.length, 1);
});

test('keyed handshake: the export proving another key → auth-failed (mutual authentication)', async () => {
  const c = await keyedToAuth();
  c.sock.send({ cmd: Cmd.AUTH, payload: encodeAuth({ proof: Buffer.alloc(32, 1) }) });
  assert.equal(c.conn.state, ConnState.CLOSED);
  assert.equal(c.closes[0]!.reason, 'auth-failed');
  assert.match(c.closes[0]!.detail, /authentication failed/);
  assert.equal(c.ready(), 0);
});

test('keyed handshake: AUTH refused by the export (EACCES) → auth-failed with its message', async () => {
  const c = await keyedToAuth();
  c.sock.send({ cmd: Cmd.AUTH, status: os.errno.EACCES, payload: encodeRefusal('authentication failed: the key proof does not match') });
  assert.equal(c.closes[0]!.reason, 'auth-failed');
  assert.match(c.closes[0]!.detail, /authentication failed: the key proof does not match/);
  assert.equal(refusalReason(os.errno.EACCES, 'authentication failed: key-bound ACL entry for 10.0.0.1 needs another key'), 'auth-failed');
  assert.equal(refusalReason(os.errno.EACCES, 'address 10.0.0.1 is not allowed'), 'denied');
});

test('keyed handshake: HELLO_REPLY and AUTH together bounded by resend-timeout; an unreadable key → auth-failed', async () => {
  const c = await keyedToAuth({ resendTimeoutMs: 2000 });
  c.clock.advance(1999);
  assert.equal(c.conn.state, ConnState.AUTH_SENT);
  c.clock.advance(1);
  assert.equal(c.conn.state, ConnState.CLOSED);
  assert.match(c.closes[0]!.detail, /no AUTH/);
  const d = makeConn({}, { config: GCM, key: Object.assign(new Error('key file /k: cannot read it (EACCES)'), { errno: 'EACCES' }) });
  d.conn.start();
  await flush();
  assert.equal(d.conn.state, ConnState.CLOSED);
  assert.deepEqual([d.closes[0]!.reason, d.closes[0]!.errno], ['auth-failed', 'EACCES']);
  assert.match(d.closes[0]!.detail, /cannot read it/);
  assert.equal(d.sock.frames.length, 0, 'nothing sent without a key');
});

test('suite none+sha256: no AUTH, frames carry digest tags from sequence 0', async () => {
  const c = makeConn({}, { config: { ...DEFAULT_CRYPTO, hash: 'sha256' }, key: KEY });
  c.conn.start();
  c.sock.emit('connect'); // no key to read: the socket opens at once
  assert.equal(decodeHello(c.sock.frames[0]!.payload).keyId, null);
  c.sock.send(helloReply({ suite: 'none+sha256' }));
  assert.equal(c.conn.state, ConnState.READY);
  c.state.outstanding = true;
  c.conn.sendTxn({ id: 1, op: 'flush', offset: 0, length: 0, payload: null, flags: 0,
    submittedAt: 0, attempts: 1, done: null, place: 'sent' }, 0, 1);
  const io = c.sock.frames.find((f) => f.cmd === Cmd.IO)!;
  assert.equal(io.tagLength, 32);
  const suite = suiteByName('none+sha256');
  assert.doesNotThrow(() => open(suite, { enc: Buffer.alloc(0), mac: Buffer.alloc(0) }, 0, io.header, io.payload, io.tag));
});
