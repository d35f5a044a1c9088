// Remote node against a tiny in-test export speaking DST wire v2 over 127.0.0.1:
// handshake, size, read/write through submit(), replay after a killed socket, identity change.
import { CryptoPool } from '../../src/engine/crypto-pool.js';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import {
  DEFAULT_CHUNK, DEFAULT_REGION, DEFAULT_CRYPTO, DEFAULT_LIMITS, DEFAULT_POLICY, type EventFields, type NodeContext, type Policy, type RemoteConfig,
} from '../../src/engine/types.js';
import {
  Cmd, Flag, FrameDecoder, Op, decodeHello, encodeFrame, encodeHelloReply, type Frame, type Hello,
} from '../../src/protocol/wire.js';
import { createRemoteNode, type RemoteNodeDeps } from '../../src/engine/remote/remote-node.js';
import type { NbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import type { BlockData, BlockRequest, BlockTarget } from '../../src/engine/remote/target.js';

const flat = (d: BlockData | null): Buffer | null => (d === null || Buffer.isBuffer(d) ? d : Buffer.concat(d));

/** A minimal export: answers HELLO, PING and IO from an in-memory disk. */
class FakeExport {
  readonly server = net.createServer((s) => this.onConn(s));
  readonly sockets = new Set<net.Socket>();
  readonly hellos: Hello[] = [];
  readonly ios: Frame[] = [];
  identity = Buffer.alloc(16, 0x11);
  size: number;
  disk: Buffer;
  /** return true to leave an IO unanswered */
  hold: (f: Frame) => boolean = () => false;
  port = 0;

  constructor(size: number) {
    this.size = size;
    this.disk = Buffer.alloc(size);
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  private onConn(s: net.Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => {});
    const dec = new FrameDecoder();
    s.on('data', (chunk: Buffer) => {
      dec.feed(chunk);
      for (let f = dec.next(); f; f = dec.next()) this.onFrame(s, f);
    });
  }

  private send(s: net.Socket, parts: Buffer[]): void {
    if (!s.destroyed) s.write(Buffer.concat(parts));
  }

  private onFrame(s: net.Socket, f: Frame): void {
    switch (f.cmd) {
      case Cmd.HELLO:
        this.hellos.push(decodeHello(f.payload));
        this.send(s, encodeFrame({ cmd: Cmd.HELLO_REPLY, payload: encodeHelloReply({
          identity: this.identity, size: this.size, blockSize: 512, maxRequest: 1 << 20, granted: 3,
          suite: 'none', nonce: Buffer.alloc(32, 2), message: null, instance: null, features: 0 }) }));
        return;
      case Cmd.PING:
        this.send(s, encodeFrame({ cmd: Cmd.PONG, id: f.id }));
        return;
      case Cmd.IO: {
        this.ios.push(f);
        if (this.hold(f)) return;
        let payload: Buffer | null = null;
        if (f.op === Op.READ) payload = Buffer.from(this.disk.subarray(f.offset, f.offset + f.length));
        if (f.op === Op.WRITE) f.payload.copy(this.disk, f.offset);
        this.send(s, encodeFrame({ cmd: Cmd.IO_RESPONSE, op: f.op, id: f.id, length: f.length, payload }));
        return;
      }
      default:
    }
  }

  /** Kill every client connection (RST). */
  kill(): void {
    for (const s of this.sockets) s.resetAndDestroy();
  }

  async close(): Promise<void> {
    this.kill();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const POLICY: Policy = { ...DEFAULT_POLICY, resendTimeoutMs: 1000, maxResends: 3, pingIntervalMs: 200, reconnectDelayMs: 20 };

const fakeEndpoint: RemoteNodeDeps['startEndpoint'] = async (o) => ({
  socketPath: o.socketPath, tcpAddress: null, uri: `nbd+unix:///?socket=${o.socketPath}`, connections: 0,
  close: async () => {},
}) as NbdEndpoint;

let runtimeDir = '';
after(async () => { if (runtimeDir) await rm(runtimeDir, { recursive: true, force: true }); });

async function setup(opts: { size?: number | null; exportSize?: number; deps?: RemoteNodeDeps } = {}) {
  if (!runtimeDir) runtimeDir = await mkdtemp(join(tmpdir(), 'dst-remote-'));
  const exp = new FakeExport(opts.exportSize ?? 1 << 20);
  await exp.listen();
  const config: RemoteConfig = {
    role: 'remote', name: `vol${Math.floor(Math.random() * 1e6)}`, size: opts.size ?? null, autostart: false,
    policy: { ...POLICY }, crypto: { ...DEFAULT_CRYPTO }, layout: 'single', legs: [{ remote: `127.0.0.1:${exp.port}`, export: null }], chunk: DEFAULT_CHUNK, region: DEFAULT_REGION, nbdListen: null,
  };
  const events: { event: string; fields: EventFields }[] = [];
  const ctx: NodeContext = { clock: realClock, log: silentLogger, runtimeDir, stateDir: runtimeDir, limits: DEFAULT_LIMITS, cryptoPool: new CryptoPool(1),
    events: { emit: (_n, event, fields) => events.push({ event, fields: fields ?? {} }) } };
  const node = createRemoteNode({ config }, ctx, opts.deps ?? { startEndpoint: fakeEndpoint });
  const cleanup = async () => { await node.stop({ force: true }); await exp.close(); };
  return { exp, config, node, events, cleanup };
}

function io(node: BlockTarget, req: BlockRequest): Promise<{ errno: string | null; data: Buffer | null; calls: () => number }> {
  let calls = 0;
  return new Promise((resolve) => {
    node.submit(req, (errno, data) => {
      calls++;
      resolve({ errno, data: flat(data), calls: () => calls });
    });
  });
}

async function waitFor(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const write = (offset: number, data: Buffer, fua = false): BlockRequest => ({ op: 'write', offset, length: data.length, payload: data, fua });
const read = (offset: number, length: number): BlockRequest => ({ op: 'read', offset, length, payload: null, fua: false });

test('ready: size from the export (capped by config), read/write through submit(), NBD socket served', async (t) => {
  const { exp, node, events, cleanup } = await setup({ size: 512 * 1024, deps: {} }); // the real NBD endpoint
  t.after(cleanup);
  await node.start();
  assert.equal(await node.waitReady(3000), 'ready');
  const show = node.show();
  assert.equal(show.size, 512 * 1024);
  assert.equal(node.size(), 512 * 1024);
  assert.equal(show.permissions, 'rw');
  assert.match(show.sessionId!, /^[0-9a-f]{32}$/);
  assert.equal(exp.hellos[0]!.sessionId.toString('hex'), show.sessionId);
  assert.equal(exp.hellos[0]!.exportName, '');

  const w = await io(node, write(4096, Buffer.from('hello, dst'), true));
  assert.equal(w.errno, null);
  assert.equal(exp.disk.subarray(4096, 4106).toString(), 'hello, dst');
  assert.equal(exp.ios[0]!.flags & Flag.FUA, Flag.FUA);
  const r = await io(node, read(4096, 10));
  assert.equal(r.errno, null);
  assert.equal(r.data!.toString(), 'hello, dst');
  const f = await io(node, { op: 'flush', offset: 0, length: 0, payload: null, fua: false });
  assert.equal(f.errno, null);
  const s = node.show().stats;
  assert.deepEqual([s.completed, s.bytesRead, s.bytesWritten, s.inflight], [3, 10, 10, 0]);
  assert.ok(events.some((e) => e.event === 'connected' && e.fields.sessionId === show.sessionId));

  await waitFor(() => node.show().nbd !== null, 'the NBD endpoint');
  const nbd = node.show().nbd!;
  assert.equal(nbd.socket, join(runtimeDir, 'nbd', `${(node as BlockTarget).name}.sock`));
  assert.ok((await stat(nbd.socket)).isSocket());
  await node.stop({ force: false });
  assert.equal(node.state, 'configured');
  assert.equal(node.show().nbd, null);
});

test('socket killed mid-request: reconnect, replay with REPLAY in id order, each completes once', async (t) => {
  const { exp, node, events, cleanup } = await setup();
  t.after(cleanup);
  await node.start();
  assert.equal(await node.waitReady(3000), 'ready');
  const sessionId = node.show().sessionId;
  let holding = true;
  exp.hold = () => holding;
  const p1 = io(node, write(0, Buffer.from('AAAA')));
  const p2 = io(node, write(512, Buffer.from('BBBB')));
  await waitFor(() => exp.ios.length === 2, 'two writes at the export');
  holding = false;
  exp.kill();
  const [r1, r2] = await Promise.all([p1, p2]);
  assert.equal(r1.errno, null);
  assert.equal(r2.errno, null);
  assert.equal(exp.disk.subarray(0, 4).toString(), 'AAAA');
  assert.equal(exp.disk.subarray(512, 516).toString(), 'BBBB');
  // first sends, then the replays on the new connection
  assert.deepEqual(exp.ios.map((f) => [f.id, f.flags & Flag.REPLAY]), [[1, 0], [2, 0], [1, Flag.REPLAY], [2, Flag.REPLAY]]);
  assert.equal(exp.hellos.length, 2);
  assert.equal(exp.hellos[1]!.sessionId.toString('hex'), sessionId, 'session id kept across reconnects');
  assert.equal(node.state, 'ready');
  const s = node.show().stats;
  assert.deepEqual([s.replayed, s.resends, s.reconnects, s.completed, s.failed], [2, 2, 1, 2, 0]);
  const names = events.map((e) => e.event);
  assert.ok(names.includes('disconnected'));
  assert.deepEqual(events.filter((e) => e.event === 'replayed').map((e) => e.fields.count), [2]);
  assert.deepEqual(events.filter((e) => e.event === 'state-changed').map((e) => e.fields.to),
    ['connecting', 'ready', 'backoff', 'ready']);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(r1.calls() + r2.calls(), 2, 'each completed exactly once');
});

test('identity changed on reconnect: node failed, queued writes fail with EIO and are never replayed', async (t) => {
  const { exp, node, events, cleanup } = await setup();
  t.after(cleanup);
  await node.start();
  assert.equal(await node.waitReady(3000), 'ready');
  exp.hold = () => true;
  const p = io(node, write(0, Buffer.from('must not land')));
  await waitFor(() => exp.ios.length === 1, 'the write at the export');
  exp.identity = Buffer.alloc(16, 0x22); // another disk behind the same address
  exp.kill();
  const r = await p;
  assert.equal(r.errno, 'EIO');
  assert.equal(node.state, 'failed');
  assert.equal(node.reason, 'identity-changed');
  assert.equal(exp.ios.length, 1, 'the write was not replayed on the other disk');
  const failedEv = events.find((e) => e.event === 'txn-failed')!;
  assert.deepEqual(failedEv.fields, { op: 'write', offset: 0, length: 13, errno: 'EIO' });
  assert.ok(events.some((e) => e.event === 'state-changed' && e.fields.to === 'failed' && e.fields.reason === 'identity-changed'));
  // new requests fail at once; waitReady returns the final state
  assert.equal((await io(node, read(0, 1))).errno, 'EIO');
  assert.equal(await node.waitReady(1000), 'failed');
  // start again accepts the new disk with a new session
  const oldSession = node.show().sessionId;
  exp.hold = () => false;
  await node.start();
  assert.equal(await node.waitReady(3000), 'ready');
  assert.notEqual(node.show().sessionId, oldSession);
});

test('size shrank on reconnect: node failed with size-shrank', async (t) => {
  const { exp, node, cleanup } = await setup();
  t.after(cleanup);
  await node.start();
  assert.equal(await node.waitReady(3000), 'ready');
  exp.size = 512 * 1024;
  exp.kill();
  await waitFor(() => node.state === 'failed', 'failed');
  assert.equal(node.reason, 'size-shrank');
});

test('export down at start: backoff with reason link, ready once it listens', async (t) => {
  const exp = new FakeExport(1 << 20);
  await exp.listen();
  const port = exp.port;
  await exp.close(); // nothing listens there now
  const { node, config, cleanup } = await setup();
  t.after(cleanup);
  config.legs[0]!.remote = `127.0.0.1:${port}`; // the node reads its config live
  await node.start();
  assert.equal(await node.waitReady(100), 'backoff');
  assert.equal(node.reason, 'link');
  const again = new FakeExport(1 << 20);
  await new Promise<void>((resolve) => again.server.listen(port, '127.0.0.1', resolve));
  t.after(() => again.close());
  assert.equal(await node.waitReady(3000), 'ready');
});

test('graceful stop drains in-flight requests; stop refuses new ones with ESHUTDOWN', async (t) => {
  const { exp, node, cleanup } = await setup();
  t.after(cleanup);
  await node.start();
  assert.equal(await node.waitReady(3000), 'ready');
  const held: Frame[] = [];
  exp.hold = (f) => { held.push(f); return true; };
  const p = io(node, write(0, Buffer.from('x')));
  await waitFor(() => held.length === 1, 'the held write');
  const stopping = node.stop({ force: false });
  assert.equal(node.state, 'stopping');
  assert.equal((await io(node, read(0, 1))).errno, 'ESHUTDOWN');
  // the link drops and comes back while draining: the write is replayed and succeeds
  exp.hold = () => false;
  exp.kill();
  assert.equal((await p).errno, null);
  await stopping;
  assert.equal(node.state, 'configured');
});
