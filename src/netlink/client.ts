// CLI end of the control socket: typed requests over generic-netlink frames.
//
//  - seq numbers: 1, 2, ... wrapping at 2^32 (0 is never used), skipping seqs still in flight;
//  - every request has a timeout (DST_ERR_TIMEOUT / ETIMEDOUT) and always drops its entry;
//  - NLMSG_ERROR → DstError(code from the ext-ack cookie, message from the ext-ack message,
//    errno = the symbolic name of -error);
//  - dumps are collected until NLMSG_DONE; wrapped arrays are unwrapped;
//  - subscribe turns this connection into an event stream (other requests are then refused);
//  - the connection dying fails everything pending with DST_ERR_CONN_LOST.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { realClock, type Clock, type TimerHandle } from '../util/clock.js';
import type { ControlApi, ControlCommand, EventRecord } from '../engine/types.js';
import { DstError, type DstErrorCode, errnoName, errnoOf } from '../util/errors.js';
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLM_F_DUMP,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  type NlMsgHeader,
  formatGenlMessage,
  parseError,
  parseGenlHeader,
  parseNlMsgHeader,
} from './codec.js';
import { DST_CMD, DST_FAMILY_ID, type AnyCommandSpec, commandSpec, decodeObject, encodeObject } from './family.js';
import { eventRecordSchema } from './objects.js';
import { NlFramer } from './framer.js';
import type { AnySchema } from './schema.js';

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

export interface ConnectOptions {
  /** connect timeout and default per-request timeout (ms) */
  timeoutMs?: number;
  /** first seq to allocate (tests: wrap-around) */
  firstSeq?: number;
  /** timers (default the real clock) */
  clock?: Clock;
}

export interface RequestOptions {
  timeoutMs?: number;
}

export interface Subscription {
  /** resolves when the stream ends (engine closed it, or close() was called); never rejects */
  closed: Promise<void>;
  close(): void;
}

export interface ControlClient {
  readonly path: string;
  request<C extends ControlCommand>(cmd: C, args: ControlApi[C]['args'], opts?: RequestOptions): Promise<ControlApi[C]['result']>;
  /**
   * Turn this connection into an event stream. onEvent gets the `subscribed` record first, then
   * every event; the promise resolves once `subscribed` has arrived. Other requests are then refused.
   */
  subscribe(node: string | null, onEvent: (ev: EventRecord) => void): Promise<Subscription>;
  close(): void;
}

/** Allocates nlmsg seq numbers: wraps at 2^32, never 0, skips seqs in use. */
export class SeqAllocator {
  private next: number;

  constructor(first = 1) {
    this.next = first >>> 0 || 1;
  }

  alloc(inUse: { has(seq: number): boolean }): number {
    for (let tries = 0; tries < 0x100000; tries++) {
      const s = this.next;
      this.next = (this.next + 1) >>> 0;
      if (this.next === 0) this.next = 1;
      if (!inUse.has(s)) return s;
    }
    throw new DstError('DST_ERR_BUSY', 'no free control sequence number', { errno: 'EBUSY' });
  }
}

interface Pending {
  spec: AnyCommandSpec;
  parts: unknown[];
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: TimerHandle | null;
  /** subscribe: called for every record, `subscribed` first */
  onEvent?: (ev: EventRecord) => void;
}

/** Connect to the engine. ENOENT / ECONNREFUSED (any connect failure) → DST_ERR_NO_ENGINE. */
export function connectControl(path: string, opts: ConnectOptions = {}): Promise<ControlClient> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path);
    const timer = (opts.clock ?? realClock).setTimer(timeoutMs, () => {
      socket.destroy();
      reject(new DstError('DST_ERR_NO_ENGINE', `no engine at ${path}: connect timed out after ${timeoutMs} ms`, { errno: 'ETIMEDOUT' }));
    });
    socket.once('connect', () => {
      timer.cancel();
      socket.removeAllListeners('error');
      resolve(new Client(path, socket, opts));
    });
    socket.once('error', (err) => {
      timer.cancel();
      const errno = errnoOf(err);
      reject(new DstError('DST_ERR_NO_ENGINE', `no engine at ${path}: ${errno === 'ENOENT' ? 'no such socket' : errno === 'ECONNREFUSED' ? 'connection refused'
        : errno === 'EACCES' ? 'permission denied (the engine allows its own user, and its --group if started with one)' : err.message}`, { errno, cause: err }));
    });
  });
}

class Client implements ControlClient {
  private readonly framer = new NlFramer();
  private readonly pending = new Map<number, Pending>();
  private readonly seqs: SeqAllocator;
  private readonly timeoutMs: number;
  private readonly clock: Clock;
  private closedErr: DstError | null = null;
  private subscribed = false;
  private readonly closeWaiters: (() => void)[] = [];

  constructor(readonly path: string, private readonly socket: net.Socket, opts: ConnectOptions) {
    this.seqs = new SeqAllocator(opts.firstSeq ?? 1);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.clock = opts.clock ?? realClock;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new DstError('DST_ERR_CONN_LOST', `control connection to ${path} failed: ${err.message}`, { errno: errnoOf(err) ?? 'ECONNRESET', cause: err })));
    socket.on('close', () => this.fail(new DstError('DST_ERR_CONN_LOST', `the engine at ${path} closed the control connection`, { errno: 'ECONNRESET' })));
  }

  request<C extends ControlCommand>(cmd: C, args: ControlApi[C]['args'], opts: RequestOptions = {}): Promise<ControlApi[C]['result']> {
    if (cmd === 'subscribe') return Promise.reject(new DstError('DST_ERR_INVALID', 'use subscribe() for the event stream', { errno: 'EINVAL' }));
    return this.send(commandSpec(cmd) as AnyCommandSpec, args, opts.timeoutMs ?? this.timeoutMs) as Promise<ControlApi[C]['result']>;
  }

  async subscribe(node: string | null, onEvent: (ev: EventRecord) => void): Promise<Subscription> {
    let first: EventRecord;
    try {
      first = await this.send(commandSpec('subscribe'), { node }, this.timeoutMs, onEvent) as EventRecord;
    } catch (err) {
      this.subscribed = false;
      throw err;
    }
    if (first.event !== 'subscribed') throw new DstError('DST_ERR_BAD_FRAME', `event stream started with ${first.event}, expected subscribed`);
    const closed = new Promise<void>((resolve) => {
      if (this.closedErr) resolve();
      else this.closeWaiters.push(resolve);
    });
    return { closed, close: () => this.close() };
  }

  close(): void {
    this.fail(new DstError('DST_ERR_CLOSED', `control connection to ${this.path} closed`, { errno: 'ECANCELED' }));
    this.socket.destroy();
  }

  private send(spec: AnyCommandSpec, args: unknown, timeoutMs: number, onEvent?: (ev: EventRecord) => void): Promise<unknown> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    if (this.subscribed) return Promise.reject(new DstError('DST_ERR_STATE', 'this control connection is an event stream; open another one', { errno: 'EBUSY' }));
    let frame: Buffer;
    let seq: number;
    try {
      const attrs = encodeObject(spec.args as unknown as AnySchema as never, args as never);
      seq = this.seqs.alloc(this.pending);
      const flags = NLM_F_REQUEST | (spec.reply.kind === 'dump' ? NLM_F_DUMP : 0);
      frame = formatGenlMessage({ type: DST_FAMILY_ID, flags, seq, cmd: spec.cmd, attrs });
    } catch (err) {
      return Promise.reject(err);
    }
    if (spec.name === 'subscribe') this.subscribed = true;
    return new Promise((resolve, reject) => {
      const p: Pending = { spec, parts: [], resolve, reject, timer: null };
      if (onEvent) p.onEvent = onEvent;
      p.timer = this.clock.setTimer(timeoutMs, () => {
        this.pending.delete(seq);
        reject(new DstError('DST_ERR_TIMEOUT', `control request ${spec.name} got no answer within ${timeoutMs} ms`, { errno: 'ETIMEDOUT' }));
      });
      this.pending.set(seq, p);
      this.socket.write(frame);
    });
  }

  private settle(seq: number, p: Pending, err: Error | null, value?: unknown): void {
    p.timer?.cancel();
    p.timer = null;
    if (p.spec.name !== 'subscribe' || err) this.pending.delete(seq);
    if (err) p.reject(err);
    else p.resolve(value);
  }

  private onData(chunk: Buffer): void {
    let msgs: Buffer[];
    try {
      msgs = this.framer.push(chunk);
      for (const m of msgs) this.onMessage(m);
      if (this.framer.failure) throw this.framer.failure;
    } catch (err) {
      const e = err instanceof DstError ? err : new DstError('DST_ERR_BAD_FRAME', String(err));
      this.fail(new DstError('DST_ERR_BAD_FRAME', `malformed reply from the engine at ${this.path}: ${e.message}`, { errno: 'EPROTO', cause: e }));
      this.socket.destroy();
    }
  }

  private onMessage(buf: Buffer): void {
    const h: NlMsgHeader = parseNlMsgHeader(buf).x;
    const payload = buf.subarray(NLMSG_HDRLEN, h.len);
    const p = this.pending.get(h.seq);
    if (!p) return; // late answer to a request that timed out
    if (h.type === NLMSG_ERROR) {
      const { x } = parseError(payload, h.flags);
      if (x.error === 0) return; // ack: the reply itself already settled the request
      const errno = errnoName(-x.error);
      const code = (x.code && /^DST_ERR_[A-Z_]+$/.test(x.code) ? x.code : 'DST_ERR_INTERNAL') as DstErrorCode;
      this.settle(h.seq, p, new DstError(code, x.message ?? `${p.spec.name} failed: ${errno}`, { errno }));
      return;
    }
    if (h.type === NLMSG_DONE) {
      if (p.spec.reply.kind !== 'dump') throw new DstError('DST_ERR_BAD_FRAME', `NLMSG_DONE for ${p.spec.name}, which is not a dump`);
      this.settle(h.seq, p, null, p.parts);
      return;
    }
    if (h.type !== DST_FAMILY_ID) throw new DstError('DST_ERR_BAD_FRAME', `unexpected message type 0x${h.type.toString(16)}`);
    const { x: genl, consumed } = parseGenlHeader(payload);
    const attrs = payload.subarray(consumed);
    const reply = p.spec.reply as { kind: 'object' | 'wrapped' | 'dump' | 'stream'; schema?: AnySchema; item?: AnySchema; key?: string };
    if (reply.kind === 'stream') {
      const first = p.parts.length === 0;
      const expected = first ? p.spec.cmd : DST_CMD.EVENT;
      if (genl.cmd !== expected) throw new DstError('DST_ERR_BAD_FRAME', `event stream: got genl cmd ${genl.cmd}, expected ${expected}`);
      const ev = decodeObject(eventRecordSchema, attrs);
      // onEvent sees the `subscribed` record first, then every event, in stream order
      deliver(p.onEvent, ev);
      if (first) {
        p.parts.push(ev);
        this.settle(h.seq, p, null, ev);
      }
      return;
    }
    if (genl.cmd !== p.spec.cmd) throw new DstError('DST_ERR_BAD_FRAME', `reply to ${p.spec.name} carries genl cmd ${genl.cmd}, expected ${p.spec.cmd}`);
    if (reply.kind === 'dump') {
      if (!(h.flags & NLM_F_MULTI)) throw new DstError('DST_ERR_BAD_FRAME', `dump part of ${p.spec.name} without NLM_F_MULTI`);
      p.parts.push(decodeObject(reply.item as never, attrs));
      return;
    }
    const obj = decodeObject(reply.schema as never, attrs) as Record<string, unknown>;
    this.settle(h.seq, p, null, reply.kind === 'wrapped' ? obj[reply.key!] : obj);
  }

  private fail(err: DstError): void {
    if (this.closedErr) return;
    this.closedErr = err;
    for (const [seq, p] of this.pending) this.settle(seq, p, err);
    this.pending.clear();
    for (const w of this.closeWaiters.splice(0)) w();
  }
}

/** Call a subscriber; its exceptions surface as uncaught errors, never as frame errors. */
function deliver(fn: ((ev: EventRecord) => void) | undefined, ev: EventRecord): void {
  if (!fn) return;
  try {
    fn(ev);
  } catch (err) {
    process.nextTick(() => { throw err; });
  }
}

let cachedVersion: string | null = null;
/** This package's version (package.json next to dist/). */
export function clientVersion(): string {
  if (cachedVersion === null) {
    try {
      // dist/src/netlink/client.js → package root; src/netlink/client.ts when run from source
      const candidates = [new URL('../../../package.json', import.meta.url), new URL('../../package.json', import.meta.url)];
      for (const u of candidates) {
        try {
          const pkg = JSON.parse(readFileSync(u, 'utf8')) as { name?: string; version?: string };
          if (pkg.name === 'dst' && pkg.version) { cachedVersion = pkg.version; break; }
        } catch { /* next */ }
      }
    } finally {
      cachedVersion ??= '0.0.0-unknown';
    }
  }
  return cachedVersion;
}

export interface ControlRequestOptions extends ConnectOptions {
  /** the version to present in hello (default: this package's version) */
  version?: string;
  /** per-request timeout (default: timeoutMs, else 30 s) */
  requestTimeoutMs?: number;
}

/**
 * One request, the CLI way: connect, hello (a version mismatch → DST_ERR_VERSION naming both),
 * send, close.
 */
export async function controlRequest<C extends ControlCommand>(path: string, cmd: C, args: ControlApi[C]['args'], opts: ControlRequestOptions = {}): Promise<ControlApi[C]['result']> {
  const client = await connectControl(path, opts);
  try {
    await helloCheck(client, opts.version ?? clientVersion());
    const ro: RequestOptions = {};
    const t = opts.requestTimeoutMs ?? opts.timeoutMs;
    if (t !== undefined) ro.timeoutMs = t;
    return await client.request(cmd, args, ro);
  } finally {
    client.close();
  }
}

/** Exchange versions; throws DST_ERR_VERSION when the engine runs another version. */
export async function helloCheck(client: ControlClient, version: string): Promise<{ version: string; pid: number }> {
  const r = await client.request('hello', { version });
  if (r.version !== version) {
    throw new DstError('DST_ERR_VERSION', `version mismatch: this dst is ${version}, the engine at ${client.path} (pid ${r.pid}) is ${r.version}; restart the engine or use the matching dst`, { errno: 'EPROTO' });
  }
  return r;
}
