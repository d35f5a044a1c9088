// A real export node on a temporary file (createExportNode, no engine), driven by a raw client
// built on src/protocol/wire.ts: the fixture of the test/integration/export-*.test.ts files.
import { CryptoPool } from '../../src/engine/crypto-pool.js';
import assert from 'node:assert/strict';
import net from 'node:net';
import { writeFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { realClock, type Clock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { errnoNumber } from '../../src/util/errors.js';
import {
  Access, Cmd, FrameDecoder, Op, WIRE_VERSION, decodeHelloReply, decodeRefusal, encodeFrame, encodeHello,
  type Frame, type FrameInit, type HelloReply, type MirrorClaim,
} from '../../src/protocol/wire.js';
import {
  DEFAULT_LIMITS, DEFAULT_CRYPTO, DEFAULT_POLICY, type AclEntry, type EventFields, type EventName, type ExportConfig,
  type Limits, type NodeContext, type NodeRuntime,
} from '../../src/engine/types.js';
import { createExportNode, type ExportNodeOptions } from '../../src/engine/export/export-node.js';
import { tmpDir } from './tmp.js';

export const SIZE = 4 * 1024 * 1024;
/** This test file's directory (disks, state dir), removed when its tests end. */
export const dir = tmpDir(undefined, 'dst-export-');

// ---- fixture ----

export interface Fixture {
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

export async function makeDisk(size = SIZE): Promise<string> {
  const path = join(dir, `disk${diskSeq++}.img`);
  await writeFile(path, '');
  await truncate(path, size);
  return path;
}

export interface FixtureOpts {
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

export async function fixture(o: FixtureOpts = {}): Promise<Fixture> {
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

export class RawClient {
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

  async hello(o: { session?: Buffer; exportName?: string; access?: number; suite?: string; mirrorClaim?: MirrorClaim } = {}):
    Promise<{ status: number; reply: HelloReply | null; message: string | null }> {
    this.send({
      cmd: Cmd.HELLO,
      payload: encodeHello({
        version: WIRE_VERSION, exportName: o.exportName ?? '', sessionId: o.session ?? randomBytes(16),
        access: o.access ?? (Access.READ | Access.WRITE), suite: o.suite ?? 'none', keyId: null, nonce: randomBytes(32),
        mirrorClaim: o.mirrorClaim ?? null,
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

export async function connected(f: Fixture, session?: Buffer): Promise<{ c: RawClient; reply: HelloReply }> {
  const c = await RawClient.connect(f.port);
  const r = await c.hello(session ? { session } : {});
  assert.equal(r.status, 0, `HELLO refused: ${r.message}`);
  return { c, reply: r.reply! };
}

export const E = (name: string): number => errnoNumber(name);
export const pattern = (byte: number, n = 4096): Buffer => Buffer.alloc(n, byte);
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await sleep(5);
  }
}
