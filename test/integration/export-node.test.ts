// A real export node on a temporary file, driven by a raw client built on src/protocol/wire.ts.
import { CryptoPool } from '../../src/engine/crypto-pool.js';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, rm, writeFile, readFile, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FakeClock, realClock, type Clock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { errnoNumber } from '../../src/util/errors.js';
import {
  Access, Cmd, Flag, FrameDecoder, Op, WIRE_VERSION, decodeHelloReply, decodeRefusal, encodeFrame, encodeHello,
  type Frame, type FrameInit, type HelloReply,
} from '../../src/protocol/wire.js';
import {
  DEFAULT_LIMITS, DEFAULT_CRYPTO, DEFAULT_POLICY, type AclEntry, type EventFields, type EventName, type ExportConfig,
  type Limits, type NodeContext, type NodeRuntime,
} from '../../src/engine/types.js';
import { createExportNode, exportTestCounters, type ExportNodeOptions } from '../../src/engine/export/export-node.js';
import { ErrorFilter } from '../../src/engine/export/filters.js';

const SIZE = 4 * 1024 * 1024;
let dir = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dst-export-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

// ---- fixture ----

interface Fixture {
  rt: NodeRuntime;
  holder: { config: ExportConfig };
  events: { event: EventName; fields: EventFields }[];
  logs: string[];
  disk: string;
  port: number;
  clock: Clock;
  stop(): Promise<void>;
}

let diskSeq = 0;

async function makeDisk(size = SIZE): Promise<string> {
  const path = join(dir, `disk${diskSeq++}.img`);
  await writeFile(path, '');
  await truncate(path, size);
  return path;
}

interface FixtureOpts {
  acl?: AclEntry[];
  readonly?: boolean;
  size?: number | null;
  disk?: string;
  name?: string;
  env?: NodeJS.ProcessEnv;
  limits?: Partial<Limits>;
  clock?: Clock;
  wrapBackend?: ExportNodeOptions['wrapBackend'];
  stateDir?: string;
  start?: boolean;
  listen?: string;
}

async function fixture(o: FixtureOpts = {}): Promise<Fixture> {
  const disk = o.disk ?? await makeDisk();
  const cfg: ExportConfig = {
    role: 'export', name: o.name ?? 'vol', size: o.size ?? null, autostart: false,
    policy: { ...DEFAULT_POLICY }, crypto: { ...DEFAULT_CRYPTO },
    disk, listen: o.listen ?? '127.0.0.1:0', readonly: o.readonly ?? false,
    acl: o.acl ?? [{ addr: '127.0.0.1', perm: 'rw', keyFile: null }],
  };
  const holder = { config: cfg };
  const events: Fixture['events'] = [];
  const logs: string[] = [];
  const clock = o.clock ?? realClock;
  const ctx: NodeContext = {
    clock,
    log: createLogger('debug', 'json', (line) => logs.push(line)),
    events: { emit: (_node, event, fields = {}) => { events.push({ event, fields }); } },
    runtimeDir: dir,
    stateDir: o.stateDir ?? join(dir, 'state'),
    limits: { ...DEFAULT_LIMITS, ...o.limits }, cryptoPool: new CryptoPool(1),
  };
  const rt = createExportNode({ get config() { return holder.config; } }, ctx,
    { env: o.env ?? {}, ...(o.wrapBackend ? { wrapBackend: o.wrapBackend } : {}) });
  const f: Fixture = {
    rt, holder, events, logs, disk, port: 0, clock,
    stop: () => rt.stop({ force: true }),
  };
  if (o.start !== false) {
    await rt.start();
    f.port = Number(/:(\d+)$/.exec(rt.show().listen!)![1]);
  }
  return f;
}

// ---- raw client ----

class RawClient {
  private readonly decoder = new FrameDecoder();
  private inbox: Frame[] = [];
  private waiters: (() => void)[] = [];
  closed = false;
  readonly closedP: Promise<void>;
  decodeError: Error | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.decoder.feed(c);
      try {
        for (let f = this.decoder.next(); f; f = this.decoder.next()) this.inbox.push(f);
      } catch (err) {
        this.decodeError = err as Error;
      }
      this.wake();
    });
    socket.on('error', () => {});
    this.closedP = new Promise((resolve) => socket.on('close', () => { this.closed = true; this.wake(); resolve(); }));
    socket.on('end', () => socket.end());
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  send(init: FrameInit): void {
    for (const part of encodeFrame(init)) this.socket.write(part);
  }

  sendRaw(buf: Buffer | string): void {
    this.socket.write(buf);
  }

  /** The first received frame matching `pred` (removed from the inbox). Rejects on timeout or close. */
  async take(pred: (f: Frame) => boolean, ms = 3000): Promise<Frame> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a frame');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  has(pred: (f: Frame) => boolean): boolean {
    return this.inbox.some(pred);
  }

  async hello(o: { session?: Buffer; exportName?: string; access?: number; suite?: string } = {}):
    Promise<{ status: number; reply: HelloReply | null; message: string | null }> {
    this.send({
      cmd: Cmd.HELLO,
      payload: encodeHello({
        version: WIRE_VERSION, exportName: o.exportName ?? '', sessionId: o.session ?? randomBytes(16),
        access: o.access ?? (Access.READ | Access.WRITE), suite: o.suite ?? 'none', keyId: null, nonce: randomBytes(32),
      }),
    });
    const f = await this.take((x) => x.cmd === Cmd.HELLO_REPLY);
    if (f.status !== 0) return { status: f.status, reply: null, message: decodeRefusal(f.payload) };
    return { status: 0, reply: decodeHelloReply(f.payload), message: null };
  }

  private nextId = 1;

  /** Send one IO and wait for its response. */
  async io(op: Op, offset: number, length: number, o: { data?: Buffer; flags?: number; id?: number; ackedBelow?: number } = {}):
    Promise<Frame> {
    const id = o.id ?? this.nextId++;
    this.send({ cmd: Cmd.IO, op, offset, length, flags: o.flags ?? 0, id, ackedBelow: o.ackedBelow ?? 0, payload: o.data ?? null });
    return this.take((f) => f.cmd === Cmd.IO_RESPONSE && f.id === id);
  }

  close(): void {
    this.socket.destroy();
  }
}

async function connected(f: Fixture, session?: Buffer): Promise<{ c: RawClient; reply: HelloReply }> {
  const c = await RawClient.connect(f.port);
  const r = await c.hello(session ? { session } : {});
  assert.equal(r.status, 0, `HELLO refused: ${r.message}`);
  return { c, reply: r.reply! };
}

const E = (name: string): number => errnoNumber(name);
const pattern = (byte: number, n = 4096): Buffer => Buffer.alloc(n, byte);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await sleep(5);
  }
}

// ---- tests ----

test('export: start, HELLO → HELLO_REPLY with size and a stable identity; state events', async () => {
  const f = await fixture();
  try {
    const show = f.rt.show();
    assert.equal(show.state, 'listening');
    assert.match(show.listen!, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(f.port, 0);
    assert.equal(show.size, SIZE);
    assert.equal(show.nbd, null);
    assert.equal(show.sessionId, null);
    assert.equal(show.permissions, null);
    assert.deepEqual(f.events[0], { event: 'state-changed', fields: { from: 'configured', to: 'listening', reason: null } });

    const { c, reply } = await connected(f);
    assert.equal(reply.size, SIZE);
    assert.equal(reply.identity.length, 16);
    assert.equal(reply.granted, Access.READ | Access.WRITE);
    assert.equal(reply.suite, 'none');
    assert.equal(reply.nonce.length, 32);
    assert.equal(reply.maxRequest, DEFAULT_LIMITS.maxRequestCap);
    await until(() => f.events.some((e) => e.event === 'connected'));
    c.close();
    await until(() => f.events.some((e) => e.event === 'disconnected'));

    // restart: same identity
    await f.rt.stop({ force: false });
    assert.equal(f.rt.state, 'configured');
    await f.rt.start();
    await f.rt.start(); // idempotent
    f.port = Number(/:(\d+)$/.exec(f.rt.show().listen!)![1]);
    const again = await connected(f);
    assert.deepEqual(again.reply.identity, reply.identity, 'identity stable across restarts');
    again.c.close();
    await f.rt.stop({ force: false });

    // a different disk under the same name: a new identity
    f.holder.config = { ...f.holder.config, disk: await makeDisk() };
    await f.rt.start();
    f.port = Number(/:(\d+)$/.exec(f.rt.show().listen!)![1]);
    const other = await connected(f);
    assert.notDeepEqual(other.reply.identity, reply.identity);
    other.c.close();
  } finally {
    await f.stop();
  }
  assert.equal(f.rt.state, 'configured');
  assert.ok(f.events.some((e) => e.event === 'state-changed' && e.fields.to === 'stopping'));
});

test('export: the configured size limits the export', async () => {
  const f = await fixture({ size: 65536 });
  try {
    const { c, reply } = await connected(f);
    assert.equal(reply.size, 65536);
    assert.equal((await c.io(Op.READ, 65536 - 512, 1024)).status, E('EINVAL'));
    assert.equal((await c.io(Op.WRITE, 65536, 512, { data: pattern(1, 512) })).status, E('ENOSPC'));
    c.close();
  } finally {
    await f.stop();
  }
});

test('export: write/read back, FUA, flush, write-zeroes, trim; stats count them', async () => {
  const f = await fixture();
  try {
    const { c } = await connected(f);
    const data = randomBytes(8192);
    assert.equal((await c.io(Op.WRITE, 4096, 8192, { data })).status, 0);
    const r = await c.io(Op.READ, 4096, 8192);
    assert.equal(r.status, 0);
    assert.equal(r.length, 8192);
    assert.deepEqual(r.payload, data);

    const fua = randomBytes(4096);
    assert.equal((await c.io(Op.WRITE, 0, 4096, { data: fua, flags: Flag.FUA })).status, 0);
    assert.equal((await c.io(Op.FLUSH, 0, 0)).status, 0);
    const disk = await readFile(f.disk);
    assert.deepEqual(disk.subarray(0, 4096), fua, 'FUA write is on the disk');

    // concurrent flushes all answered
    const flushes = await Promise.all([1, 2, 3, 4].map(() => c.io(Op.FLUSH, 0, 0)));
    assert.ok(flushes.every((x) => x.status === 0));

    // write-zeroes over more than one 1 MiB chunk
    await c.io(Op.WRITE, 1024 * 1024 - 512, 4096, { data: pattern(0xab) });
    assert.equal((await c.io(Op.WRITE_ZEROES, 4096, 2 * 1024 * 1024)).status, 0);
    const z = await c.io(Op.READ, 1024 * 1024 - 512, 4096);
    assert.deepEqual(z.payload, Buffer.alloc(4096));
    assert.deepEqual((await c.io(Op.READ, 0, 4096)).payload, fua, 'bytes before the zeroed range intact');

    assert.equal((await c.io(Op.TRIM, 0, 4096)).status, 0, 'TRIM is an accepted hint');
    assert.equal((await c.io(Op.WRITE_ZEROES, 0, 512, { flags: Flag.FUA })).status, 0);

    const st = f.rt.show().stats;
    assert.equal(st.inflight, 0);
    assert.equal(st.bytesWritten, 8192 + 4096 + 4096);
    assert.ok(st.bytesRead >= 8192 + 4096 + 4096);
    assert.ok(st.completed >= 12);
    assert.equal(st.failed, 0);
    assert.equal(st.oldestInflightMs, null);
    c.close();
  } finally {
    await f.stop();
  }
});

test('export: bad requests get an errno and the connection stays', async () => {
  const f = await fixture();
  try {
    const { c } = await connected(f);
    assert.equal((await c.io(Op.WRITE, SIZE - 512, 1024, { data: pattern(1, 1024) })).status, E('ENOSPC'));
    assert.equal((await c.io(Op.WRITE_ZEROES, SIZE, 512)).status, E('ENOSPC'));
    assert.equal((await c.io(Op.READ, SIZE, 512)).status, E('EINVAL'));
    assert.equal((await c.io(Op.TRIM, SIZE - 1, 2)).status, E('EINVAL'));
    assert.equal((await c.io(Op.READ, 0, 0)).status, E('EINVAL'));
    assert.equal((await c.io(Op.READ, 0, 512, { flags: 0x40 })).status, E('EINVAL'), 'unknown flags');
    assert.equal((await c.io(7 as Op, 0, 512)).status, E('EINVAL'), 'unknown op');
    const big = await c.io(Op.READ, 0, DEFAULT_LIMITS.maxRequestCap + 1);
    assert.equal(big.status, E('EINVAL'));
    assert.equal(big.payload.length, 0);
    // still serving on the same connection
    const w = await c.io(Op.WRITE, 0, 512, { data: pattern(9, 512) });
    assert.equal(w.status, 0);
    assert.equal(c.closed, false);
    assert.ok(f.rt.show().stats.failed >= 8);
    c.close();
  } finally {
    await f.stop();
  }
});

test('export: bad magic / an HTTP request closes that connection only', async () => {
  const f = await fixture();
  try {
    const { c: good } = await connected(f);
    const http = await RawClient.connect(f.port);
    http.sendRaw('GET / HTTP/1.1\r\nHost: x\r\n\r\n' + ' '.repeat(64));
    await http.closedP;
    assert.ok(f.logs.some((l) => l.includes('is not DST2')), 'reason logged');

    // bad magic after a good HELLO
    const { c: bad } = await connected(f);
    const junk = Buffer.alloc(48, 0x5a);
    bad.sendRaw(junk);
    await bad.closedP;

    // a WRITE whose payload does not match its length: bad frame → close
    const { c: bad2 } = await connected(f);
    bad2.send({ cmd: Cmd.IO, op: Op.WRITE, offset: 0, length: 1024, id: 1, payload: pattern(1, 100) });
    await bad2.closedP;

    // an unexpected command after HELLO (HELLO_REPLY from the client)
    const { c: bad3 } = await connected(f);
    bad3.send({ cmd: Cmd.IO_RESPONSE, id: 1 });
    await bad3.closedP;

    const r = await good.io(Op.WRITE, 0, 512, { data: pattern(3, 512) });
    assert.equal(r.status, 0);
    assert.equal(good.closed, false);
    good.close();
  } finally {
    await f.stop();
  }
});

test('export: a frame cut in half then close runs nothing; the node keeps serving', async () => {
  const f = await fixture();
  try {
    const { c } = await connected(f);
    const parts = encodeFrame({ cmd: Cmd.IO, op: Op.WRITE, offset: 8192, length: 4096, id: 1, payload: pattern(0x77) });
    const whole = Buffer.concat(parts);
    c.sendRaw(whole.subarray(0, 48 + 2000));
    await sleep(30);
    c.socket.end();
    await c.closedP;
    await until(() => f.logs.some((l) => l.includes('connection closed mid-frame')));
    const disk = await readFile(f.disk);
    assert.deepEqual(disk.subarray(8192, 8192 + 4096), Buffer.alloc(4096), 'nothing written');
    const { c: c2 } = await connected(f);
    assert.equal((await c2.io(Op.READ, 8192, 4096)).status, 0);
    c2.close();
  } finally {
    await f.stop();
  }
});

test('export: HELLO refusals: ACL deny, empty ACL, wrong export name, suite mismatch', async () => {
  const f = await fixture({ acl: [{ addr: '127.0.0.0/8', perm: 'rw', keyFile: null }, { addr: '127.0.0.1', perm: 'none', keyFile: null }] });
  try {
    const c = await RawClient.connect(f.port);
    const r = await c.hello();
    assert.equal(r.status, E('EACCES'));
    assert.equal(r.message, 'address 127.0.0.1 is not allowed by node vol');
    await c.closedP;
    await until(() => f.events.some((e) => e.event === 'acl-denied'));
    assert.deepEqual(f.events.find((e) => e.event === 'acl-denied')!.fields, { addr: '127.0.0.1' });

    f.holder.config = { ...f.holder.config, acl: [] };
    f.rt.configChanged();
    const c2 = await RawClient.connect(f.port);
    assert.equal((await c2.hello()).status, E('EACCES'), 'empty ACL = nobody');

    f.holder.config = { ...f.holder.config, acl: [{ addr: '127.0.0.1', perm: 'rw', keyFile: null }] };
    f.rt.configChanged();
    const c3 = await RawClient.connect(f.port);
    const r3 = await c3.hello({ exportName: 'other' });
    assert.equal(r3.status, E('ENOENT'));
    assert.match(r3.message!, /other/);
    const c4 = await RawClient.connect(f.port);
    assert.equal((await c4.hello({ exportName: 'vol' })).status, 0, 'the node name selects the export');
    const c5 = await RawClient.connect(f.port);
    const r5 = await c5.hello({ suite: 'aes-gcm' });
    assert.equal(r5.status, E('EPROTO'));
    assert.match(r5.message!, /aes-gcm/);
    assert.match(r5.message!, /none/);
    for (const x of [c2, c3, c4, c5]) x.close();
  } finally {
    await f.stop();
  }
});

test('export: read-only grant; a hand-built WRITE gets EPERM from the export', async () => {
  const f = await fixture({ acl: [{ addr: '127.0.0.1', perm: 'r', keyFile: null }] });
  try {
    const { c, reply } = await connected(f);
    assert.equal(reply.granted, Access.READ);
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, E('EPERM'));
    assert.equal((await c.io(Op.WRITE_ZEROES, 0, 512)).status, E('EPERM'));
    assert.equal((await c.io(Op.READ, 0, 512)).status, 0);
    c.close();
  } finally {
    await f.stop();
  }
  const ro = await fixture({ readonly: true });
  try {
    const { c, reply } = await connected(ro);
    assert.equal(reply.granted, Access.READ, 'read-only export grants r even to an rw entry');
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, E('EPERM'));
    c.close();
  } finally {
    await ro.stop();
  }
});

test('export: a revoked ACL entry (config swapped) → EPERM on the next request', async () => {
  const f = await fixture();
  try {
    const { c } = await connected(f);
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, 0);
    f.holder.config = { ...f.holder.config, acl: [{ addr: '127.0.0.1', perm: 'r', keyFile: null }] };
    f.rt.configChanged();
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(2, 512) })).status, E('EPERM'));
    assert.equal((await c.io(Op.READ, 0, 512)).status, 0);
    f.holder.config = { ...f.holder.config, acl: [] };
    f.rt.configChanged();
    assert.equal((await c.io(Op.READ, 0, 512)).status, E('EPERM'));
    assert.equal((await c.io(Op.FLUSH, 0, 0)).status, E('EPERM'));
    assert.equal(c.closed, false);
    const c2 = await RawClient.connect(f.port);
    assert.equal((await c2.hello()).status, E('EACCES'), 'new HELLOs refused too');
    c.close();
  } finally {
    await f.stop();
  }
});

test('export: PING is answered while a backend call is held, and at the in-flight cap', async () => {
  const f = await fixture({ env: { DST_TEST_HOLD_WRITE: '65536:600' }, limits: { maxInflightPerConnection: 1 } });
  try {
    const { c } = await connected(f);
    const t0 = Date.now();
    c.send({ cmd: Cmd.IO, op: Op.WRITE, offset: 65536, length: 4096, id: 1, payload: pattern(1) });
    // at the cap (1): this read waits behind the held write
    c.send({ cmd: Cmd.IO, op: Op.READ, offset: 0, length: 512, id: 2 });
    c.send({ cmd: Cmd.PING, id: 99 });
    const pong = await c.take((x) => x.cmd === Cmd.PONG);
    assert.equal(pong.id, 99);
    assert.equal(c.has((x) => x.cmd === Cmd.IO_RESPONSE), false, 'PONG came while the write is still held');
    assert.equal(f.rt.show().stats.inflight, 1);
    assert.ok(f.rt.show().stats.oldestInflightMs! >= 0);
    const w = await c.take((x) => x.cmd === Cmd.IO_RESPONSE && x.id === 1);
    assert.equal(w.status, 0);
    assert.ok(Date.now() - t0 >= 550, 'the write was held');
    const r = await c.take((x) => x.cmd === Cmd.IO_RESPONSE && x.id === 2);
    assert.equal(r.status, 0);
    assert.equal(exportTestCounters(f.rt)!.heldWritesExecuted, 1);
    assert.ok(f.logs.some((l) => l.includes('held write executed')));
    c.close();
  } finally {
    await f.stop();
  }
});

test('export: fencing — a second HELLO with the same session id kills the first socket', async () => {
  const f = await fixture();
  try {
    const session = randomBytes(16);
    const { c: first } = await connected(f, session);
    assert.equal((await first.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, 0);
    const { c: second } = await connected(f, session);
    await first.closedP;
    assert.equal(second.closed, false);
    assert.equal((await second.io(Op.READ, 0, 512)).status, 0);
    assert.equal(f.rt.show().stats.reconnects, 1);
    assert.ok(f.logs.some((l) => l.includes('fenced')));
    // another session is not affected
    const { c: other } = await connected(f);
    assert.equal(second.closed, false);
    other.close();
    second.close();
  } finally {
    await f.stop();
  }
});

/**
 * The resend scenario fencing exists for: write A is held in the backend when the link dies;
 * the client reconnects, replays A (REPLAY) and then writes B to the same place. Without fencing
 * the stale original A lands after B: the data reverts.
 */
async function resendScenario(env: NodeJS.ProcessEnv): Promise<{ final: Buffer; replayStatus: number; f: Fixture }> {
  const f = await fixture({ env: { DST_TEST_HOLD_WRITE: '131072:400', ...env } });
  const session = randomBytes(16);
  const { c: a } = await connected(f, session);
  a.send({ cmd: Cmd.IO, op: Op.WRITE, offset: 131072, length: 4096, id: 1, payload: pattern(0xaa) });
  await until(() => f.rt.show().stats.inflight === 1);
  a.close(); // link lost with write 1 in the backend
  const { c: b } = await connected(f, session);
  // replay of id 1 carrying different bytes: if it ran, the disk would show 0xcc
  const replay = await b.io(Op.WRITE, 131072, 4096, { id: 1, flags: Flag.REPLAY, data: pattern(0xcc) });
  assert.equal((await b.io(Op.WRITE, 131072, 4096, { id: 2, ackedBelow: 2, data: pattern(0xbb) })).status, 0);
  await until(() => exportTestCounters(f.rt)!.heldWritesExecuted === 1);
  const final = (await b.io(Op.READ, 131072, 4096, { id: 3 })).payload;
  b.close();
  await f.stop();
  return { final, replayStatus: replay.status, f };
}

test('export: fencing + dedup — the replayed write is answered from the record; no revert', async () => {
  const { final, replayStatus, f } = await resendScenario({});
  assert.equal(replayStatus, 0, 'the recorded status of write 1');
  assert.deepEqual(final, pattern(0xbb), 'the newer write stays');
  assert.ok(f.logs.some((l) => l.includes('waiting for the old connection')));
  assert.equal(f.rt.show().stats.replayed, 1);
});

test('export: DST_TEST_NO_FENCING=1 shows the revert fencing prevents', async () => {
  const { final } = await resendScenario({ DST_TEST_NO_FENCING: '1' });
  assert.deepEqual(final, pattern(0xaa), 'the stale write landed after the newer one');
});

test('export: a REPLAY for an unknown session just runs; a replayed READ runs', async () => {
  const f = await fixture();
  try {
    const { c } = await connected(f);
    assert.equal((await c.io(Op.WRITE, 0, 512, { id: 5, flags: Flag.REPLAY, data: pattern(0x11, 512) })).status, 0);
    assert.deepEqual((await c.io(Op.READ, 0, 512, { id: 5, flags: Flag.REPLAY })).payload, pattern(0x11, 512));
    c.close();
  } finally {
    await f.stop();
  }
});

test('export: backend errors are logged with the real errno and carried as status', async () => {
  let filter: ErrorFilter | null = null;
  const f = await fixture({ wrapBackend: (b) => (filter = new ErrorFilter(b, 'EIO', ['write'], 1)) });
  try {
    const { c } = await connected(f);
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, E('EIO'));
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, 0);
    assert.equal(filter!.failed, 1);
    assert.ok(f.logs.some((l) => l.includes('"errno":"EIO"') && l.includes('WRITE failed')));
    assert.equal(f.rt.show().stats.failed, 1);
    c.close();
  } finally {
    await f.stop();
  }
});

test('export: a vanished disk (ENXIO) fails the node', async () => {
  const f = await fixture({ wrapBackend: (b) => new ErrorFilter(b, 'ENXIO', ['read'], 1) });
  try {
    const { c } = await connected(f);
    assert.equal((await c.io(Op.READ, 0, 512)).status, E('ENXIO'));
    await c.closedP;
    assert.equal(f.rt.state, 'failed');
    assert.match(f.rt.reason!, /gone.*ENXIO/);
    await f.rt.stop({ force: false });
    assert.equal(f.rt.state, 'configured');
  } finally {
    await f.stop();
  }
});

test('export: stop drains — the in-flight write finishes and is answered first', async () => {
  const f = await fixture({ env: { DST_TEST_HOLD_WRITE: '0:300' } });
  const { c } = await connected(f);
  c.send({ cmd: Cmd.IO, op: Op.WRITE, offset: 0, length: 4096, id: 1, payload: pattern(0x42) });
  await until(() => f.rt.show().stats.inflight === 1);
  const stopped = f.rt.stop({ force: false });
  assert.equal(f.rt.state, 'stopping');
  const r = await c.take((x) => x.cmd === Cmd.IO_RESPONSE && x.id === 1);
  assert.equal(r.status, 0);
  await c.closedP;
  await stopped;
  assert.equal(f.rt.state, 'configured');
  assert.deepEqual((await readFile(f.disk)).subarray(0, 4096), pattern(0x42));
});

test('export: stop --force destroys connections at once; the held write never lands', async () => {
  const f = await fixture({ env: { DST_TEST_HOLD_WRITE: '0:5000' } });
  const { c } = await connected(f);
  c.send({ cmd: Cmd.IO, op: Op.WRITE, offset: 0, length: 4096, id: 1, payload: pattern(0x42) });
  await until(() => f.rt.show().stats.inflight === 1);
  const t0 = Date.now();
  await f.rt.stop({ force: true });
  assert.ok(Date.now() - t0 < 1000);
  await c.closedP;
  assert.equal(f.rt.state, 'configured');
  assert.equal(exportTestCounters(f.rt)!.heldWritesExecuted, 0);
  assert.deepEqual((await readFile(f.disk)).subarray(0, 4096), Buffer.alloc(4096));
});

test('export: start failures — missing disk, port in use → failed with a reason', async () => {
  const f = await fixture({ disk: join(dir, 'missing.img'), start: false });
  await assert.rejects(f.rt.start(), (err: Error & { code?: string }) => err.code === 'DST_ERR_NOT_FOUND');
  assert.equal(f.rt.state, 'failed');
  assert.match(f.rt.reason!, /ENOENT/);
  await f.rt.stop({ force: false });
  assert.equal(f.rt.state, 'configured');

  const a = await fixture();
  try {
    const b = await fixture({ start: false, listen: `127.0.0.1:${a.port}`, name: 'vol2' });
    await assert.rejects(b.rt.start(), (err: Error & { code?: string; errno?: string }) =>
      err.code === 'DST_ERR_BUSY' && err.errno === 'EADDRINUSE');
    assert.equal(b.rt.state, 'failed');
    assert.match(b.rt.reason!, /EADDRINUSE/);
    await b.rt.stop({ force: true });
  } finally {
    await a.stop();
  }
});

test('export: connections over the limit are refused with EBUSY', async () => {
  const f = await fixture({ limits: { maxConnectionsPerExport: 2 } });
  try {
    const { c: a } = await connected(f);
    const { c: b } = await connected(f);
    const c = await RawClient.connect(f.port);
    const r = await c.hello();
    assert.equal(r.status, E('EBUSY'));
    await c.closedP;
    a.close();
    b.close();
  } finally {
    await f.stop();
  }
});

test('export: no HELLO within the timeout → closed (fake clock)', async () => {
  const clock = new FakeClock();
  const f = await fixture({ clock });
  try {
    const c = await RawClient.connect(f.port);
    await until(() => exportTestCounters(f.rt)!.connections === 1);
    clock.advance(DEFAULT_LIMITS.helloTimeoutMs - 1);
    await sleep(20);
    assert.equal(c.closed, false);
    clock.advance(1);
    await c.closedP;
    assert.ok(f.logs.some((l) => l.includes('no HELLO within')));
  } finally {
    await f.stop();
  }
});

test('export: a first frame that is not HELLO, or a huge HELLO, is closed before buffering it', async () => {
  const f = await fixture();
  try {
    const c = await RawClient.connect(f.port);
    c.send({ cmd: Cmd.IO, op: Op.READ, offset: 0, length: 512, id: 1 });
    await c.closedP;
    const c2 = await RawClient.connect(f.port);
    const head = encodeFrame({ cmd: Cmd.HELLO, payload: Buffer.alloc(1024 * 1024) })[0]!;
    c2.sendRaw(head);
    await c2.closedP;
    assert.ok(f.logs.some((l) => l.includes('exceeds the limit')));
  } finally {
    await f.stop();
  }
});
