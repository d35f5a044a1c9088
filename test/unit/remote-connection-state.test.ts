// Connection state table, handshake, liveness (PING windows, dead detection) and the node's
// backoff schedule — all on a FakeClock with an in-memory socket; nothing sleeps.
import { CryptoPool } from '../../src/engine/crypto-pool.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { constants as os } from 'node:os';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import {
  DEFAULT_CRYPTO, DEFAULT_LIMITS, DEFAULT_POLICY, type CryptoConfig, type NodeContext, type Policy, type RemoteConfig,
} from '../../src/engine/types.js';
import {
  Cmd, FrameDecoder, decodeAuth, decodeHello, encodeAuth, encodeFrame, encodeHeader, encodeHelloReply, encodeRefusal,
  type Frame, type FrameInit,
} from '../../src/protocol/wire.js';
import { authProof, deriveSessionKeys, keyId, open, seal, sealedLength, suiteByName } from '../../src/protocol/suites.js';
import {
  ConnState, Connection, transition, refusalReason, type ConnCloseInfo, type ConnEvent, type WireSocket,
} from '../../src/engine/remote/connection.js';
import { backoffDelay, createRemoteNode, BACKOFF_CAP_MS } from '../../src/engine/remote/remote-node.js';
import type { NbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

/** In-memory socket: records frames written, lets the test play the export. */
class FakeSocket extends EventEmitter implements WireSocket {
  readonly frames: Frame[] = [];
  private readonly dec = new FrameDecoder();
  destroyed = false;
  ended = false;
  /** called for each frame the client writes (the fake export) */
  onFrame: ((f: Frame, s: FakeSocket) => void) | null = null;
  write(chunk: Buffer): boolean {
    this.dec.feed(chunk);
    for (let f = this.dec.next(); f; f = this.dec.next()) {
      this.frames.push(f);
      const cb = this.onFrame;
      if (cb) { const fr = f; queueMicrotask(() => cb(fr, this)); }
    }
    return true;
  }
  cork(): void {}
  uncork(): void {}
  end(): void { this.ended = true; }
  destroy(): void { this.destroyed = true; }
  setNoDelay(): this { return this; }
  send(f: FrameInit): void { this.emit('data', Buffer.concat(encodeFrame(f))); }
  count(cmd: Cmd): number { return this.frames.filter((f) => f.cmd === cmd).length; }
}

const IDENTITY = Buffer.alloc(16, 0xab);
function helloReply(over: { identity?: Buffer; size?: number; suite?: string; granted?: number } = {}): FrameInit {
  return {
    cmd: Cmd.HELLO_REPLY,
    payload: encodeHelloReply({ identity: over.identity ?? IDENTITY, size: over.size ?? 1 << 20, blockSize: 512,
      maxRequest: 1 << 20, granted: over.granted ?? 3, suite: over.suite ?? 'none', nonce: Buffer.alloc(32, 1), message: null }),
  };
}

/** Fake export behaviour: answer HELLO and (optionally) PING. */
function exportBehaviour(opts: { pong: boolean }) {
  return (f: Frame, s: FakeSocket) => {
    if (f.cmd === Cmd.HELLO) s.send(helloReply());
    else if (f.cmd === Cmd.PING && opts.pong) s.send({ cmd: Cmd.PONG, id: f.id });
  };
}

function makeConn(over: Partial<Policy> = {}, crypto?: { config: CryptoConfig; key: Buffer | Error }) {
  const clock = new FakeClock();
  const policy: Policy = { ...DEFAULT_POLICY, ...over };
  const sock = new FakeSocket();
  const closes: ConnCloseInfo[] = [];
  const responses: Frame[] = [];
  let ready = 0;
  const state = { outstanding: false };
  const conn = new Connection({
    host: '127.0.0.1', port: 1, clock, log: silentLogger, policy: () => policy,
    exportName: 'vol', sessionId: Buffer.alloc(16, 7),
    outstanding: () => state.outstanding,
    onReady: () => { ready++; },
    onResponse: (f) => responses.push(f),
    onClose: (i) => closes.push(i),
    socketFactory: () => sock,
    ...(crypto ? {
      crypto: () => crypto.config,
      loadKey: async () => { if (crypto.key instanceof Error) throw crypto.key; return Buffer.from(crypto.key); },
    } : {}),
  });
  return { clock, policy, sock, conn, closes, responses, state, ready: () => ready };
}

async function readyConn(over: Partial<Policy> = {}) {
  const c = makeConn(over);
  c.conn.start();
  c.sock.emit('connect');
  c.sock.send(helloReply());
  assert.equal(c.conn.state, ConnState.READY);
  return c;
}

// ---- state table ----

test('state table: legal transitions', () => {
  const path: [ConnState, ConnEvent, ConnState][] = [
    [ConnState.IDLE, 'start', ConnState.CONNECTING],
    [ConnState.CONNECTING, 'tcp-up', ConnState.HELLO_SENT],
    [ConnState.HELLO_SENT, 'hello-ok', ConnState.READY],
    [ConnState.READY, 'fail', ConnState.CLOSED],
    [ConnState.READY, 'close', ConnState.CLOSED],
    [ConnState.CONNECTING, 'fail', ConnState.CLOSED],
    [ConnState.HELLO_SENT, 'fail', ConnState.CLOSED],
    [ConnState.IDLE, 'close', ConnState.CLOSED],
    [ConnState.HELLO_SENT, 'auth-sent', ConnState.AUTH_SENT],
    [ConnState.AUTH_SENT, 'auth-ok', ConnState.READY],
    [ConnState.AUTH_SENT, 'fail', ConnState.CLOSED],
    [ConnState.AUTH_SENT, 'close', ConnState.CLOSED],
  ];
  for (const [from, ev, to] of path) assert.equal(transition(from, ev), to, `${from} --${ev}-->`);
});

test('state table: illegal transitions throw', () => {
  const illegal: [ConnState, ConnEvent][] = [
    [ConnState.IDLE, 'hello-ok'], [ConnState.IDLE, 'tcp-up'], [ConnState.IDLE, 'fail'],
    [ConnState.CONNECTING, 'hello-ok'], [ConnState.CONNECTING, 'start'],
    [ConnState.HELLO_SENT, 'tcp-up'], [ConnState.READY, 'hello-ok'], [ConnState.READY, 'start'],
    [ConnState.HELLO_SENT, 'auth-ok'], [ConnState.AUTH_SENT, 'hello-ok'], [ConnState.READY, 'auth-ok'], [ConnState.CONNECTING, 'auth-sent'],
    [ConnState.CLOSED, 'start'], [ConnState.CLOSED, 'close'], [ConnState.CLOSED, 'fail'],
  ];
  for (const [from, ev] of illegal) {
    assert.throws(() => transition(from, ev), (e: any) => e.code === 'DST_ERR_INTERNAL', `${from} --${ev}-->`);
  }
  const c = makeConn();
  c.conn.start();
  assert.throws(() => c.conn.start(), /illegal transition/);
});

// ---- handshake ----

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
  c.conn.sendTxn({ id: 9, op: 'write', offset: 4096, length: 3, payload: Buffer.from('xyz'), fua: true,
    submittedAt: 0, attempts: 1, done: null, place: 'sent' }, 0x03, 7);
  const io = c.sock.frames.find((f) => f.cmd === Cmd.IO)!;
  assert.deepEqual([io.id, io.op, io.flags, io.offset, io.length, io.ackedBelow, io.payload.toString()],
    [9, 2, 3, 4096, 3, 7, 'xyz']);
  c.sock.send({ cmd: Cmd.IO_RESPONSE, op: 2, id: 9 });
  assert.equal(c.responses[0]!.id, 9);
});

// ---- keyed handshake (DESIGN §9) ----

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
    suite: 'aes-gcm', nonce: serverNonce, message: null });
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
  c.conn.sendTxn({ id: 5, op: 'write', offset: 0, length: 3, payload: Buffer.from('abc'), fua: false,
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
  c.conn.sendTxn({ id: 1, op: 'flush', offset: 0, length: 0, payload: null, fua: false,
    submittedAt: 0, attempts: 1, done: null, place: 'sent' }, 0, 1);
  const io = c.sock.frames.find((f) => f.cmd === Cmd.IO)!;
  assert.equal(io.tagLength, 32);
  const suite = suiteByName('none+sha256');
  assert.doesNotThrow(() => open(suite, { enc: Buffer.alloc(0), mac: Buffer.alloc(0) }, 0, io.header, io.payload, io.tag));
});

// ---- liveness ----

test('idle: PING after ping-interval of silence; dead after 3 missed pongs', async () => {
  const c = await readyConn({ pingIntervalMs: 1000, resendTimeoutMs: 5000 });
  c.clock.advance(999);
  assert.equal(c.sock.count(Cmd.PING), 0);
  c.clock.advance(1);
  assert.equal(c.sock.count(Cmd.PING), 1);
  c.clock.advance(1000);
  assert.equal(c.sock.count(Cmd.PING), 2);
  c.clock.advance(1000);
  assert.equal(c.sock.count(Cmd.PING), 3);
  c.clock.advance(999);
  assert.equal(c.conn.state, ConnState.READY);
  c.clock.advance(1);
  assert.equal(c.conn.state, ConnState.CLOSED);
  assert.match(c.closes[0]!.detail, /3 pings unanswered/);
  assert.equal(c.closes[0]!.wasReady, true);
});

test('idle with pongs: alive forever, one PING per ping-interval', async () => {
  const c = await readyConn({ pingIntervalMs: 1000, resendTimeoutMs: 5000 });
  c.sock.onFrame = exportBehaviour({ pong: true });
  for (let t = 0; t < 60_000; t += 100) { c.clock.advance(100); await flush(); }
  assert.equal(c.conn.state, ConnState.READY);
  const pings = c.sock.count(Cmd.PING);
  assert.ok(pings >= 55 && pings <= 60, `pings ${pings}`);
});

test('outstanding: PING after min(ping-interval, resend-timeout/3); dead after resend-timeout with no byte', async () => {
  const c = await readyConn({ pingIntervalMs: 5000, resendTimeoutMs: 3000 });
  c.state.outstanding = true;
  c.conn.sendTxn({ id: 1, op: 'read', offset: 0, length: 512, payload: null, fua: false,
    submittedAt: 0, attempts: 1, done: null, place: 'sent' }, 0, 1);
  c.clock.advance(999);
  assert.equal(c.sock.count(Cmd.PING), 0);
  c.clock.advance(1);
  assert.equal(c.sock.count(Cmd.PING), 1);
  c.clock.advance(1000);
  assert.equal(c.sock.count(Cmd.PING), 2);
  c.clock.advance(999);
  assert.equal(c.conn.state, ConnState.READY);
  c.clock.advance(1);
  assert.equal(c.conn.state, ConnState.CLOSED);
  assert.match(c.closes[0]!.detail, /no byte from the export for 3000 ms/);
});

test('slow but alive: a long fdatasync with PINGs answered is never declared dead', async () => {
  const c = await readyConn({ pingIntervalMs: 1000, resendTimeoutMs: 2000 });
  c.sock.onFrame = exportBehaviour({ pong: true });
  c.state.outstanding = true; // the flush is outstanding for a minute
  c.conn.sendTxn({ id: 1, op: 'flush', offset: 0, length: 0, payload: null, fua: false,
    submittedAt: 0, attempts: 1, done: null, place: 'sent' }, 0, 1);
  for (let t = 0; t < 60_000; t += 50) { c.clock.advance(50); await flush(); }
  assert.equal(c.conn.state, ConnState.READY);
  assert.ok(c.sock.count(Cmd.PING) >= 80, `pings ${c.sock.count(Cmd.PING)} (window ${Math.min(1000, 2000 / 3)} ms)`);
  // the export finally answers: work done, idle cadence again, still alive
  c.state.outstanding = false;
  c.sock.send({ cmd: Cmd.IO_RESPONSE, op: 3, id: 1 });
  for (let t = 0; t < 10_000; t += 100) { c.clock.advance(100); await flush(); }
  assert.equal(c.conn.state, ConnState.READY);
});

test('outstanding: the dead clock starts when work starts, not at the last idle byte', async () => {
  const c = await readyConn({ pingIntervalMs: 1000, resendTimeoutMs: 3000 });
  c.clock.advance(1500); // one idle ping unanswered, last byte 1.5 s ago
  c.state.outstanding = true;
  c.conn.sendTxn({ id: 1, op: 'read', offset: 0, length: 1, payload: null, fua: false,
    submittedAt: 0, attempts: 1, done: null, place: 'sent' }, 0, 1);
  c.clock.advance(2999);
  assert.equal(c.conn.state, ConnState.READY);
  c.clock.advance(1);
  assert.equal(c.conn.state, ConnState.CLOSED);
});

test('close(graceful) sends CLOSE and ends; onClose reports once with reason closed', async () => {
  const c = await readyConn();
  c.conn.close('stop', true);
  c.conn.close('again', true);
  assert.equal(c.sock.count(Cmd.CLOSE), 1);
  assert.equal(c.sock.ended, true);
  assert.equal(c.closes.length, 1);
  assert.equal(c.closes[0]!.reason, 'closed');
  assert.equal(c.clock.pending() <= 1, true); // only the FIN grace timer may remain
  c.sock.emit('close');
  assert.equal(c.closes.length, 1);
});

// ---- backoff ----

test('backoff schedule: reconnect-delay doubling to a 30 s cap', () => {
  const p = { reconnectDelayMs: 1000 };
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 50].map((n) => backoffDelay(p, n)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(BACKOFF_CAP_MS, 30_000);
  assert.equal(backoffDelay({ reconnectDelayMs: 50 }, 2), 200);
});

function makeNode(over: Partial<Policy> = {}) {
  const clock = new FakeClock();
  const config: RemoteConfig = {
    role: 'remote', name: 'vol', size: null, autostart: false, policy: { ...DEFAULT_POLICY, ...over },
    crypto: { ...DEFAULT_CRYPTO }, remote: '127.0.0.1:10825', export: null, nbdListen: null,
  };
  const events: { event: string; fields: any }[] = [];
  const ctx: NodeContext = { clock, log: silentLogger, events: { emit: (_n, event, fields) => events.push({ event, fields }) },
    runtimeDir: '/nonexistent', stateDir: '/nonexistent', limits: DEFAULT_LIMITS, cryptoPool: new CryptoPool(1) };
  const attempts: { at: number; sock: FakeSocket }[] = [];
  const mode = { accept: false };
  const node = createRemoteNode({ config }, ctx, {
    socketFactory: () => {
      const sock = new FakeSocket();
      attempts.push({ at: clock.now(), sock });
      if (mode.accept) {
        sock.onFrame = exportBehaviour({ pong: true });
        queueMicrotask(() => sock.emit('connect'));
      } else {
        queueMicrotask(() => {
          sock.emit('error', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:10825'), { code: 'ECONNREFUSED' }));
          sock.emit('close');
        });
      }
      return sock;
    },
    startEndpoint: async (o) => ({ socketPath: o.socketPath, tcpAddress: null, uri: `nbd+unix:///?socket=${o.socketPath}`,
      connections: 0, close: async () => {} }) as NbdEndpoint,
  });
  return { clock, config, node, events, attempts, mode };
}

test('node: every failed attempt (the first included) → backoff 1, 2, 4, ... 30 s; reset by a HELLO', async () => {
  const n = makeNode({ reconnectDelayMs: 1000 });
  const started = n.node.start();
  assert.equal(n.node.state, 'connecting');
  await started;
  await flush();
  assert.equal(n.node.state, 'backoff');
  assert.equal(n.node.reason, 'link');
  for (let i = 0; i < 7; i++) {
    const last = n.attempts.at(-1)!.at;
    const expect = Math.min(30_000, 1000 * 2 ** i);
    n.clock.advance(expect - 1);
    assert.equal(n.attempts.at(-1)!.at, last, `no attempt before ${expect} ms`);
    n.clock.advance(1);
    assert.equal(n.attempts.at(-1)!.at - last, expect);
    await flush();
  }
  assert.deepEqual(n.attempts.slice(1).map((a, i) => a.at - n.attempts[i]!.at), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.equal(n.node.state, 'backoff'); // attempts in backoff keep the state
  // the export comes back
  n.mode.accept = true;
  n.clock.advance(30_000);
  await flush(); await flush();
  assert.equal(n.node.state, 'ready');
  assert.equal(n.node.show().size, 1 << 20);
  // link lost: the schedule starts again from reconnect-delay
  n.mode.accept = false;
  const before = n.attempts.length;
  n.attempts.at(-1)!.sock.emit('close');
  assert.equal(n.node.state, 'backoff');
  n.clock.advance(999);
  assert.equal(n.attempts.length, before);
  n.clock.advance(1);
  assert.equal(n.attempts.length, before + 1);
  assert.deepEqual(n.events.filter((e) => e.event === 'state-changed').slice(0, 3).map((e) => [e.fields.from, e.fields.to, e.fields.reason]),
    [['configured', 'connecting', null], ['connecting', 'backoff', 'link'], ['backoff', 'ready', null]]);
  await n.node.stop({ force: true });
  assert.equal(n.node.state, 'configured');
});

test('node: a policy change re-arms a backoff already running', async () => {
  const n = makeNode({ reconnectDelayMs: 1000 });
  await n.node.start();
  await flush();                                   // fail #1 → 1 s
  n.clock.advance(1000); await flush();            // fail #2 → 2 s
  n.clock.advance(2000); await flush();            // fail #3 → 4 s, started at t3
  const t3 = n.attempts.at(-1)!.at;
  n.clock.advance(1000);
  // shorter: 100 ms × 4 = 400 ms from t3, already past → next attempt at once
  n.config.policy = { ...n.config.policy, reconnectDelayMs: 100 };
  n.node.configChanged();
  n.clock.advance(0);
  assert.equal(n.attempts.at(-1)!.at, t3 + 1000);
  await flush();                                   // fail #4 → 100 × 8 = 800 ms
  const t4 = n.attempts.at(-1)!.at;
  n.clock.advance(100);
  // longer: 2 s × 8 = 16 s from t4
  n.config.policy = { ...n.config.policy, reconnectDelayMs: 2000 };
  n.node.configChanged();
  n.clock.advance(15_899);
  assert.equal(n.attempts.at(-1)!.at, t4);
  n.clock.advance(1);
  assert.equal(n.attempts.at(-1)!.at, t4 + 16_000);
  await n.node.stop({ force: true });
});

test('node: waitReady resolves when ready, or with the state after ms', async () => {
  const n = makeNode({ reconnectDelayMs: 1000 });
  await n.node.start();
  const early = n.node.waitReady(500);
  await flush();
  n.clock.advance(500);
  assert.equal(await early, 'backoff');
  n.mode.accept = true;
  const later = n.node.waitReady(10_000);
  n.clock.advance(500);
  await flush(); await flush();
  assert.equal(await later, 'ready');
  assert.equal(await n.node.waitReady(1), 'ready');
  const show = n.node.show();
  assert.equal(show.sessionId!.length, 32);
  assert.deepEqual(show.nbd, { socket: '/nonexistent/nbd/vol.sock', uri: 'nbd+unix:///?socket=/nonexistent/nbd/vol.sock', listen: null });
  assert.equal(show.permissions, 'rw');
  assert.equal(n.events.filter((e) => e.event === 'connected')[0]!.fields.sessionId, show.sessionId);
  await n.node.stop({ force: false });
  assert.equal(n.node.show().nbd, null);
  assert.equal(n.node.state, 'configured');
});
