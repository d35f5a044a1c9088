// Control server + client over a real unix socket in a temp dir.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { statSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { DEFAULT_LIMITS, type ControlCommand, type EventRecord, type NodeShow } from '../../src/engine/types.js';
import { FakeClock } from '../../src/util/clock.js';
import { DstError, isDstError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/log.js';
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  type NlMsgHeader,
  formatAttr,
  formatGenlMessage,
  formatNlMsgHeader,
  parseError,
  parseGenlPayload,
  parseNlMsgHeader,
} from '../../src/netlink/codec.js';
import { DST_CMD, DST_FAMILY_ID, decodeObject, encodeObject } from '../../src/netlink/family.js';
import { eventRecordSchema, nodeShowSchema } from '../../src/netlink/objects.js';
import { NlFramer } from '../../src/netlink/framer.js';
import { createControlServer, type ControlServerOptions } from '../../src/netlink/server.js';
import { SeqAllocator, connectControl, controlRequest } from '../../src/netlink/client.js';
import { tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/tools.js';

const VERSION = '9.9.9-test';

const show = (name: string): NodeShow => ({
  name, role: 'export', state: 'configured', reason: null, size: 1 << 20, autostart: false,
  disk: '/srv/x.img', listen: '127.0.0.1:0', readonly: false, acl: [],
  remote: null, export: null, layout: null, chunk: null, region: null, degraded: null, legs: null, verify: null, splitBrain: null, uuid: null,
  permissions: null, nbd: null, attachment: null, sessionId: null, backend: null,
  policy: { resendTimeoutMs: 5000, maxResends: 12, pingIntervalMs: 1000, reconnectDelayMs: 1000, maxInflight: 64, maxRequest: 1 << 20, maxHandshakesPerAddr: 8, maxConnsPerAddr: 32, legTimeoutMs: 0, resyncRate: 0, resyncMinRate: 10485760, verifyIntervalMs: 0, deadlineMs: 65000 },
  stats: { inflight: 0, inflightPeak: 0, completed: 0, resends: 0, replayed: 0, failed: 0, reconnects: 0, bytesRead: 0, bytesWritten: 0, oldestInflightMs: null },
  crypto: { cipher: 'none', hash: 'none', suite: 'none', threads: 1, cipherKeyFile: null, hashKeyFile: null }, latency: null,
});

interface Harness {
  path: string;
  clock: FakeClock;
  calls: { cmd: ControlCommand; args: object }[];
  subscribers: { node: string | null; push: (ev: EventRecord) => void; unsubscribed: boolean }[];
  /** bytes the server has read from all its connections (its 'data' handlers ran on them) */
  received(): number;
  close(): Promise<void>;
}

async function start(t: TestContext, over: Partial<ControlServerOptions> = {}): Promise<Harness> {
  const dir = tmpDir(t, 'dst-nl-');
  const path = join(dir, 'dst.sock');
  const clock = new FakeClock();
  const calls: Harness['calls'] = [];
  const subscribers: Harness['subscribers'] = [];
  const srv = await createControlServer({
    path, socketMode: 0o600, limits: DEFAULT_LIMITS, clock, log: silentLogger, version: VERSION,
    async handler(cmd, args) {
      calls.push({ cmd, args });
      const name = (args as { name?: string }).name ?? '';
      switch (cmd) {
        case 'node-show': if (name === 'missing') throw new DstError('DST_ERR_NOT_FOUND', `node ${name}: no such node`, { errno: 'ENOENT' }); return show(name);
        case 'node-list': return name === 'none' ? [] : [show('a'), show('b')];
        case 'security-add': return [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }];
        case 'security-list': return [{ addr: '::1', perm: 'r', keyFile: null }];
        case 'node-del': throw new Error('boom');
        case 'status': return new Promise(() => {}); // never answers
        case 'config-show': return { text: 'x'.repeat(200_000) };
        default: throw new DstError('DST_ERR_INVALID', `${cmd} not in this test`);
      }
    },
    onSubscribe(node, push) {
      const s = { node, push, unsubscribed: false };
      subscribers.push(s);
      return () => { s.unsubscribed = true; };
    },
    ...over,
  });
  t.after(() => srv.close());
  const accepted: net.Socket[] = [];
  srv.server.on('connection', (s: net.Socket) => accepted.push(s));
  const received = (): number => accepted.reduce((n, s) => n + s.bytesRead, 0);
  return { path, clock, calls, subscribers, received, close: () => srv.close() };
}

/** A hand-driven client: raw bytes out, framed messages in. */
class Raw {
  private framer = new NlFramer();
  private msgs: Buffer[] = [];
  private waiters: ((b: Buffer | null) => void)[] = [];
  private ended = false;
  readonly closed: Promise<void>;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (c: Buffer) => {
      for (const m of this.framer.push(c)) {
        const w = this.waiters.shift();
        if (w) w(m); else this.msgs.push(m);
      }
    });
    sock.on('error', () => {});
    this.closed = new Promise((resolve) => sock.on('close', () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(null);
      resolve();
    }));
  }

  static async connect(path: string): Promise<Raw> {
    const s = net.createConnection(path);
    await once(s, 'connect');
    return new Raw(s);
  }

  send(b: Buffer): void { this.sock.write(b); }

  /** The next message, or null once the server closed the connection. */
  next(): Promise<{ h: NlMsgHeader; payload: Buffer } | null> {
    const parse = (m: Buffer | null) => m && { h: parseNlMsgHeader(m).x, payload: m.subarray(16) };
    const m = this.msgs.shift();
    if (m) return Promise.resolve(parse(m));
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push((b) => resolve(parse(b))));
  }

  async nextError(): Promise<{ errno: number; code: string | null; message: string | null; seq: number }> {
    const m = await this.next();
    assert.ok(m, 'expected an error reply, got the connection closed');
    assert.equal(m.h.type, NLMSG_ERROR);
    const e = parseError(m.payload, m.h.flags).x;
    return { errno: Math.abs(e.error), code: e.code, message: e.message, seq: m.h.seq };
  }
}

const req = (cmd: number, attrs: Buffer[] = [], seq = 1, type = DST_FAMILY_ID, flags = NLM_F_REQUEST) =>
  formatGenlMessage({ type, flags, seq, cmd, attrs });
const str = (s: string) => Buffer.from(s + '\0');

test('socket is created with the requested mode and unlinked on close', async (t) => {
  const h = await start(t);
  assert.equal(statSync(h.path).mode & 0o777, 0o600);
  await h.close();
  assert.equal(existsSync(h.path), false);
});

test('a second engine on a live socket is refused; a stale socket file is replaced', async (t) => {
  const h = await start(t);
  await assert.rejects(createControlServer({
    path: h.path, socketMode: 0o600, limits: DEFAULT_LIMITS, clock: h.clock, log: silentLogger, version: VERSION,
    handler: async () => ({}), onSubscribe: () => () => {},
  }), (e) => isDstError(e, 'DST_ERR_BUSY') && /already listening/.test((e as Error).message));
  // stale: a socket file whose engine died (SIGKILL: nothing unlinked it)
  const stale = join(tmpDir(t, 'dst-nl-'), 'dst.sock');
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout!, 'data');
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.ok(existsSync(stale));
  const srv2 = await createControlServer({
    path: stale, socketMode: 0o600, limits: DEFAULT_LIMITS, clock: h.clock, log: silentLogger, version: VERSION,
    handler: async () => show('s'), onSubscribe: () => () => {},
  });
  t.after(() => srv2.close());
  assert.equal((await controlRequest(stale, 'node-show', { name: 's' }, { version: VERSION })).name, 's');
});

test('request/response through the client, with the hello version check', async (t) => {
  const h = await start(t);
  const r = await controlRequest(h.path, 'node-show', { name: 'vol' }, { version: VERSION });
  assert.deepEqual(r, show('vol'));
  assert.deepEqual(h.calls.map((c) => c.cmd), ['node-show'], 'hello is answered by the server itself');
  await assert.rejects(controlRequest(h.path, 'node-show', { name: 'vol' }, { version: '1.0.0' }),
    (e) => isDstError(e, 'DST_ERR_VERSION') && /1\.0\.0/.test((e as Error).message) && /9\.9\.9-test/.test((e as Error).message));
  const c = await connectControl(h.path);
  t.after(() => c.close());
  assert.equal((await c.request('hello', { version: 'x' })).pid, process.pid);
  // wrapped array result, and large text split over several attributes
  assert.deepEqual(await c.request('security-add', { name: 'v', addr: '10.0.0.0/8', perm: 'rw', keyFile: null }), [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }]);
  assert.equal((await c.request('config-show', {})).text.length, 200_000);
});

test('dumps arrive as NLM_F_MULTI parts then NLMSG_DONE and are collected', async (t) => {
  const h = await start(t);
  const c = await connectControl(h.path);
  t.after(() => c.close());
  assert.deepEqual((await c.request('node-list', {})).map((n) => n.name), ['a', 'b']);
  assert.deepEqual(await c.request('security-list', { name: 'v' }), [{ addr: '::1', perm: 'r', keyFile: null }]);
  // on the wire
  const raw = await Raw.connect(h.path);
  t.after(() => raw.sock.destroy());
  raw.send(req(DST_CMD.NODE_LIST, [], 42, DST_FAMILY_ID, NLM_F_REQUEST | 0x300));
  for (const name of ['a', 'b']) {
    const m = (await raw.next())!;
    assert.equal(m.h.type, DST_FAMILY_ID);
    assert.equal(m.h.seq, 42);
    assert.ok(m.h.flags & NLM_F_MULTI);
    const g = parseGenlPayload(m.h, m.payload);
    assert.equal(g.genl.cmd, DST_CMD.NODE_LIST);
    assert.equal(decodeObject(nodeShowSchema, g.attrs).name, name);
  }
  const done = (await raw.next())!;
  assert.equal(done.h.type, NLMSG_DONE);
  assert.equal(done.h.seq, 42);
  // NLM_F_ACK on a plain request: the reply, then an ack (NLMSG_ERROR 0)
  raw.send(req(DST_CMD.NODE_SHOW, [formatAttr(1, str('acked'))], 43, DST_FAMILY_ID, NLM_F_REQUEST | 0x4));
  assert.equal((await raw.next())!.h.type, DST_FAMILY_ID);
  assert.deepEqual(await raw.nextError(), { errno: 0, code: null, message: null, seq: 43 });
});

test('a refused request → NLMSG_ERROR with errno, message and code; the connection stays', async (t) => {
  const h = await start(t);
  const c = await connectControl(h.path);
  t.after(() => c.close());
  await assert.rejects(c.request('node-show', { name: 'missing' }), (e) => {
    assert.ok(e instanceof DstError);
    assert.equal(e.code, 'DST_ERR_NOT_FOUND');
    assert.equal(e.errno, 'ENOENT');
    assert.equal(e.message, 'node missing: no such node');
    return true;
  });
  // a non-DstError from the handler
  await assert.rejects(c.request('node-del', { name: 'x' }), (e) => isDstError(e, 'DST_ERR_INTERNAL') && (e as DstError).errno === 'EINVAL' && e.message === 'boom');
  assert.equal((await c.request('node-show', { name: 'still' })).name, 'still');
  // on the wire: -ENOENT, the request header echoed, code in the ext-ack cookie
  const raw = await Raw.connect(h.path);
  t.after(() => raw.sock.destroy());
  raw.send(req(DST_CMD.NODE_SHOW, [formatAttr(1, str('missing'))], 7));
  const e = await raw.nextError();
  assert.deepEqual(e, { errno: 2, code: 'DST_ERR_NOT_FOUND', message: 'node missing: no such node', seq: 7 });
});

/** Each malformed input: an error reply with the expected code/errno, then that connection closes. */
const malformed: { name: string; bytes: () => Buffer; code: string; errno: number; msg: RegExp }[] = [
  { name: 'truncated (nlmsg_len < 20)', bytes: () => formatNlMsgHeader({ len: 16, type: DST_FAMILY_ID, flags: 1, seq: 3, pid: 0 }), code: 'DST_ERR_BAD_FRAME', errno: 22, msg: /too short/ },
  { name: 'oversized (nlmsg_len > 1 MiB)', bytes: () => formatNlMsgHeader({ len: 2 * 1024 * 1024, type: DST_FAMILY_ID, flags: 1, seq: 3, pid: 0 }), code: 'DST_ERR_BAD_FRAME', errno: 90, msg: /too large/ },
  { name: 'unknown cmd', bytes: () => req(99, [], 3), code: 'DST_ERR_BAD_FRAME', errno: 95, msg: /unknown dst command 99/ },
  { name: 'wrong family id', bytes: () => req(DST_CMD.STATUS, [], 3, 0x20), code: 'DST_ERR_BAD_FRAME', errno: 22, msg: /unknown message type 0x20/ },
  { name: 'wrong attribute type (string where a u32 is expected)', bytes: () => req(DST_CMD.NODE_START, [formatAttr(1, str('v')), formatAttr(2, str('10000'))], 3), code: 'DST_ERR_BAD_FRAME', errno: 22, msg: /node-start-args\.waitMs: u32 needs 4 bytes, got 6/ },
  { name: 'wrong attribute type (u32 where a string is expected)', bytes: () => req(DST_CMD.NODE_SHOW, [formatAttr(1, Buffer.from([1, 2, 3, 4]))], 3), code: 'DST_ERR_BAD_FRAME', errno: 22, msg: /name\.name.*not NUL-terminated/ },
  { name: 'nested flag on a string', bytes: () => req(DST_CMD.NODE_SHOW, [formatAttr(1, str('v'), true)], 3), code: 'DST_ERR_BAD_FRAME', errno: 22, msg: /NLA_F_NESTED/ },
  { name: 'attribute past its message', bytes: () => { const m = req(DST_CMD.NODE_SHOW, [formatAttr(1, str('vol'))], 3); m.writeUInt16LE(200, 20); return m; }, code: 'DST_ERR_BAD_FRAME', errno: 22, msg: /runs past its message/ },
  { name: 'unknown attribute', bytes: () => req(DST_CMD.NODE_SHOW, [formatAttr(1, str('v')), formatAttr(7, str('x'))], 3), code: 'DST_ERR_BAD_FRAME', errno: 22, msg: /unknown attribute number 7/ },
  { name: 'not a request', bytes: () => req(DST_CMD.STATUS, [], 3, DST_FAMILY_ID, 0), code: 'DST_ERR_BAD_FRAME', errno: 22, msg: /NLM_F_REQUEST/ },
];

for (const m of malformed) {
  test(`malformed input: ${m.name} → error reply, that connection closed, others keep working`, async (t) => {
    const h = await start(t);
    const other = await connectControl(h.path);
    t.after(() => other.close());
    const raw = await Raw.connect(h.path);
    t.after(() => raw.sock.destroy());
    raw.send(m.bytes());
    const e = await raw.nextError();
    assert.equal(e.code, m.code);
    assert.equal(e.errno, m.errno);
    assert.match(e.message ?? '', m.msg);
    assert.equal(await raw.next(), null, 'connection closed after the error');
    await raw.closed;
    assert.equal((await other.request('node-show', { name: 'ok' })).name, 'ok');
    assert.equal(h.calls.filter((c) => c.cmd === 'node-show').length, 1, 'the malformed request never reached the handler');
  });
}

test('replies to requests before a malformed one are sent first', async (t) => {
  const h = await start(t);
  const raw = await Raw.connect(h.path);
  t.after(() => raw.sock.destroy());
  raw.send(Buffer.concat([req(DST_CMD.NODE_SHOW, [formatAttr(1, str('first'))], 1), formatNlMsgHeader({ len: 4, type: 0, flags: 0, seq: 2, pid: 0 })]));
  const first = (await raw.next())!;
  assert.equal(first.h.type, DST_FAMILY_ID);
  assert.equal(decodeObject(nodeShowSchema, parseGenlPayload(first.h, first.payload).attrs).name, 'first');
  assert.equal((await raw.nextError()).code, 'DST_ERR_BAD_FRAME');
  assert.equal(await raw.next(), null);
});

test('a partial message older than the partial timeout closes the connection', async (t) => {
  const h = await start(t);
  const raw = await Raw.connect(h.path);
  t.after(() => raw.sock.destroy());
  const m = req(DST_CMD.NODE_SHOW, [formatAttr(1, str('vol'))], 5);
  raw.send(m.subarray(0, 10));
  await waitFor('the server to read 10 bytes', () => h.received() >= 10 || null);
  h.clock.advance(DEFAULT_LIMITS.controlPartialTimeoutMs - 1);
  raw.send(m.subarray(10, 12)); // more bytes do not restart the clock
  await waitFor('the server to read 12 bytes', () => h.received() >= 12 || null);
  h.clock.advance(1);
  const e = await raw.nextError();
  assert.equal(e.code, 'DST_ERR_TIMEOUT');
  assert.equal(e.errno, 110);
  assert.equal(e.seq, 5);
  assert.equal(await raw.next(), null);
});

test('a complete message in pieces within the timeout is served', async (t) => {
  const h = await start(t);
  const raw = await Raw.connect(h.path);
  t.after(() => raw.sock.destroy());
  const m = req(DST_CMD.NODE_SHOW, [formatAttr(1, str('slow'))], 5);
  raw.send(m.subarray(0, 7));
  await waitFor('the server to read 7 bytes', () => h.received() >= 7 || null);
  h.clock.advance(9_000);
  raw.send(m.subarray(7));
  const r = (await raw.next())!;
  assert.equal(r.h.type, DST_FAMILY_ID);
  h.clock.advance(60_000);
  raw.send(req(DST_CMD.NODE_SHOW, [formatAttr(1, str('again'))], 6));
  assert.equal((await raw.next())!.h.seq, 6);
});

test('request timeout → DST_ERR_TIMEOUT; seq allocation wraps at 2^32 and skips seqs in use', async (t) => {
  const h = await start(t);
  const c = await connectControl(h.path);
  t.after(() => c.close());
  await assert.rejects(c.request('status', {}, { timeoutMs: 50 }), (e) => isDstError(e, 'DST_ERR_TIMEOUT') && (e as DstError).errno === 'ETIMEDOUT' && /status/.test((e as Error).message));
  const a = new SeqAllocator(0xfffffffe);
  const inUse = new Set<number>([1]);
  assert.deepEqual([a.alloc(inUse), a.alloc(inUse), a.alloc(inUse)], [0xfffffffe, 0xffffffff, 2]);
  // a client that wraps around still matches replies
  const w = await connectControl(h.path, { firstSeq: 0xffffffff });
  t.after(() => w.close());
  assert.equal((await w.request('node-show', { name: 'w1' })).name, 'w1');
  assert.equal((await w.request('node-show', { name: 'w2' })).name, 'w2');
});

test('no engine: ENOENT and ECONNREFUSED → DST_ERR_NO_ENGINE naming the path', async (t) => {
  const dir = tmpDir(t, 'dst-nl-');
  const missing = join(dir, 'none.sock');
  await assert.rejects(connectControl(missing), (e) => isDstError(e, 'DST_ERR_NO_ENGINE') && (e as DstError).errno === 'ENOENT' && e.message.includes(missing));
  const notSock = join(dir, 'file');
  writeFileSync(notSock, '');
  await assert.rejects(controlRequest(notSock, 'status', {}), (e) => isDstError(e, 'DST_ERR_NO_ENGINE') && (e as DstError).errno === 'ECONNREFUSED');
});

test('subscribe: subscribed first, then events; other requests refused; unsubscribed on close', async (t) => {
  const h = await start(t);
  const c = await connectControl(h.path);
  const got: EventRecord[] = [];
  const sub = await c.subscribe('vol', (ev) => got.push(ev));
  assert.equal(got.length, 1);
  assert.equal(got[0]!.event, 'subscribed');
  assert.equal(got[0]!.node, 'vol');
  assert.equal(h.subscribers.length, 1);
  assert.equal(h.subscribers[0]!.node, 'vol');
  h.subscribers[0]!.push({ seq: 10, ts: 1, node: 'vol', event: 'node-started' });
  h.subscribers[0]!.push({ seq: 11, ts: 2, node: 'vol', event: 'state-changed', from: 'configured', to: 'listening', reason: null });
  while (got.length < 3) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(got.slice(1).map((e) => e.seq), [10, 11]);
  assert.deepEqual(got[2], { seq: 11, ts: 2, node: 'vol', event: 'state-changed', from: 'configured', to: 'listening', reason: null });
  await assert.rejects(c.request('node-show', { name: 'x' }), (e) => isDstError(e, 'DST_ERR_STATE'));
  sub.close();
  await sub.closed;
  while (!h.subscribers[0]!.unsubscribed) await new Promise((r) => setTimeout(r, 5));
});

test('subscribe on the wire: other requests on a subscribed connection get DST_ERR_STATE', async (t) => {
  const h = await start(t);
  const raw = await Raw.connect(h.path);
  t.after(() => raw.sock.destroy());
  raw.send(req(DST_CMD.SUBSCRIBE, [], 8));
  const first = (await raw.next())!;
  assert.equal(parseGenlPayload(first.h, first.payload).genl.cmd, DST_CMD.SUBSCRIBE);
  assert.equal(decodeObject(eventRecordSchema, parseGenlPayload(first.h, first.payload).attrs).event, 'subscribed');
  raw.send(req(DST_CMD.NODE_SHOW, [formatAttr(1, str('v'))], 9));
  const e = await raw.nextError();
  assert.deepEqual([e.code, e.errno, e.seq], ['DST_ERR_STATE', 16, 9]);
  h.subscribers[0]!.push({ seq: 1, ts: 1, node: null, event: 'node-added' });
  const ev = (await raw.next())!;
  assert.equal(ev.h.seq, 8);
  assert.equal(parseGenlPayload(ev.h, ev.payload).genl.cmd, DST_CMD.EVENT);
});

test('slow reader: bounded queue, drops counted, events-lost pushed when it catches up', async (t) => {
  const maxEventQueue = 100;
  const h = await start(t, { maxEventQueue });
  const raw = await Raw.connect(h.path);
  t.after(() => raw.sock.destroy());
  raw.send(req(DST_CMD.SUBSCRIBE, [], 1));
  assert.equal(decodeObject(eventRecordSchema, parseGenlPayload(...(((m) => [m.h, m.payload] as const)((await raw.next())!))).attrs).event, 'subscribed');
  raw.sock.pause(); // a reader that does not read
  const N = 30_000;
  const push = h.subscribers[0]!.push;
  const filler = 'x'.repeat(100);
  for (let i = 1; i <= N; i++) push({ seq: i, ts: i, node: 'vol', event: 'txn-failed', op: 'WRITE', offset: i * 4096, length: 4096, errno: 'EIO', message: filler });
  raw.sock.resume();
  const seen: EventRecord[] = [];
  let lost: EventRecord | undefined;
  while (!lost) {
    const m = (await raw.next())!;
    const ev = encodeCheck(decodeObject(eventRecordSchema, parseGenlPayload(m.h, m.payload).attrs));
    if (ev.event === 'events-lost') lost = ev;
    else seen.push(ev);
  }
  // delivered events are a prefix, in order; the rest is counted exactly once
  assert.deepEqual(seen.map((e) => e.seq), Array.from({ length: seen.length }, (_, i) => i + 1));
  assert.ok(lost.count! > 0, 'some events were dropped');
  assert.equal(seen.length + lost.count!, N);
  assert.equal(lost.seq, N, 'events-lost carries the seq of the last dropped record');
  // the stream continues after the gap
  push({ seq: N + 1, ts: 0, node: 'vol', event: 'node-stopped' });
  const after = (await raw.next())!;
  assert.equal(decodeObject(eventRecordSchema, parseGenlPayload(after.h, after.payload).attrs).seq, N + 1);
});

function encodeCheck(ev: EventRecord): EventRecord {
  encodeObject(eventRecordSchema, ev); // what arrives re-encodes (schema closed under round trip)
  return ev;
}
