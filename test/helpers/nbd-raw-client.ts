// A hand-written raw NBD client and an endpoint fixture (a memory target served on a unix socket
// in a fresh directory) for the endpoint's behaviour tests: every byte on the wire is the test's.
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/util/log.js';
import { startNbdEndpoint, type NbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import { createMemoryTarget, type MemoryTarget, type MemoryTargetOptions } from './memory-target.js';
import { Info, Opt, Rep } from '../../src/protocol/nbd.js';
import {
  BASE_ALLOCATION, decodeGreeting, decodeOptionReplyHeader, decodeRepMetaContext, encodeClientFlags, encodeInfoRequest,
  encodeMetaContextRequest, encodeOption,
} from '../../src/protocol/nbd-options.js';
import { decodeSimpleReply, decodeStructuredHeader, encodeRequest, type RequestFields } from '../../src/protocol/nbd-replies.js';

/** One event-loop turn: lets callbacks already queued run (no timer, nothing waited for). */
export const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

// ── Raw client ───────────────────────────────────────────────────────────────────────────────
export class RawClient {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private wake: (() => void) | null = null;
  ended = false;
  readonly closed: Promise<void>;
  private nextCookie = 1n;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (c: Buffer) => { this.chunks.push(c); this.bytes += c.length; this.wake?.(); });
    this.closed = new Promise((resolve) => sock.on('close', () => { this.ended = true; this.wake?.(); resolve(); }));
    sock.on('error', () => {});
  }

  static connect(path: string): Promise<RawClient>;
  static connect(port: number, host: string): Promise<RawClient>;
  static connect(where: string | number, host?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = typeof where === 'number' ? net.connect(where, host!) : net.connect(where);
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.bytes < n) {
      if (this.ended) throw new Error(`connection closed with ${this.bytes}/${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${n} bytes (have ${this.bytes})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(t); this.wake = null; resolve(); };
      });
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = [all.subarray(n)];
    this.bytes -= n;
    return all.subarray(0, n);
  }

  /** true if nothing has arrived that was not read yet */
  quiet(): boolean {
    return this.bytes === 0;
  }

  write(b: Buffer): void { this.sock.write(b); }

  /** Everything `fn` sends leaves in one write, so the endpoint reads it at once. */
  batch<T>(fn: () => T): T {
    this.sock.cork();
    try {
      return fn();
    } finally {
      this.sock.uncork();
    }
  }

  async handshake(clientFlags = 3): Promise<number> {
    const g = decodeGreeting(await this.read(18));
    this.write(encodeClientFlags(clientFlags));
    return g.handshakeFlags;
  }

  /** Send an option and read replies up to the final one (ACK or an error). */
  async option(option: number, data: Buffer = Buffer.alloc(0)): Promise<{ type: number; data: Buffer }[]> {
    this.write(encodeOption(option, data));
    const out: { type: number; data: Buffer }[] = [];
    for (;;) {
      const h = decodeOptionReplyHeader(await this.read(20));
      assert.equal(h.option, option);
      const d = h.length ? await this.read(h.length) : Buffer.alloc(0);
      out.push({ type: h.type, data: d });
      if (h.type === Rep.ACK || (h.type & 0x80000000) !== 0) return out;
    }
  }

  /**
   * Handshake + optional STRUCTURED_REPLY (+ SET_META_CONTEXT base:allocation: `allocation`,
   * which implies it) + GO; returns the transmission flags, the size and the context id (or null).
   */
  async open(opts: { structured?: boolean; allocation?: boolean; name?: string } = {}):
  Promise<{ flags: number; size: number; contextId: number | null }> {
    await this.handshake();
    if (opts.structured || opts.allocation) assert.equal((await this.option(Opt.STRUCTURED_REPLY))[0]!.type, Rep.ACK);
    let contextId: number | null = null;
    if (opts.allocation) {
      const set = await this.option(Opt.SET_META_CONTEXT, encodeMetaContextRequest(opts.name ?? '', [BASE_ALLOCATION]));
      assert.deepEqual(set.map((r) => r.type), [Rep.META_CONTEXT, Rep.ACK]);
      contextId = decodeRepMetaContext(set[0]!.data).id;
    }
    const replies = await this.option(Opt.GO, encodeInfoRequest(opts.name ?? '', [Info.BLOCK_SIZE]));
    assert.equal(replies.at(-1)!.type, Rep.ACK, `GO failed: ${replies.at(-1)!.data.toString()}`);
    const ex = replies.find((r) => r.type === Rep.INFO && r.data.readUInt16BE(0) === Info.EXPORT)!;
    return { size: Number(ex.data.readBigUInt64BE(2)), flags: ex.data.readUInt16BE(10), contextId };
  }

  send(r: Omit<RequestFields, 'cookie'> & { cookie?: bigint }): bigint {
    const cookie = r.cookie ?? this.nextCookie++;
    this.write(encodeRequest({ ...r, cookie }));
    return cookie;
  }

  /** A simple reply whose data length depends on the cookie (replies may come in any order). */
  async anyReply(dataLenOf: (cookie: bigint) => number): Promise<{ error: number; cookie: bigint; data: Buffer }> {
    const r = decodeSimpleReply(await this.read(16));
    const cookie = r.cookie.readBigUInt64BE(0);
    const n = dataLenOf(cookie);
    return { error: r.error, cookie, data: r.error === 0 && n > 0 ? await this.read(n) : Buffer.alloc(0) };
  }

  async simpleReply(dataLen = 0): Promise<{ error: number; cookie: bigint; data: Buffer }> {
    const r = decodeSimpleReply(await this.read(16));
    const data = r.error === 0 && dataLen > 0 ? await this.read(dataLen) : Buffer.alloc(0);
    return { error: r.error, cookie: r.cookie.readBigUInt64BE(0), data };
  }

  async chunk(): Promise<{ flags: number; type: number; cookie: bigint; payload: Buffer }> {
    const h = decodeStructuredHeader(await this.read(20));
    return { flags: h.flags, type: h.type, cookie: h.cookie.readBigUInt64BE(0), payload: h.length ? await this.read(h.length) : Buffer.alloc(0) };
  }

  destroy(): void { this.sock.destroy(); }
}

// ── Fixture ──────────────────────────────────────────────────────────────────────────────────
export interface Fixture { dir: string; target: MemoryTarget; ep: NbdEndpoint; path: string; done(): Promise<void> }

export async function fixture(t: { after(fn: () => Promise<void>): void }, opts: MemoryTargetOptions = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'dst-nbd-'));
  const path = join(dir, 'nbd', 'vol.sock');
  const target = createMemoryTarget({ name: 'vol', size: 1 << 20, ...opts });
  const ep = await startNbdEndpoint({ target, socketPath: path, tcp: null, log: silentLogger });
  let finished = false;
  const done = async (): Promise<void> => {
    if (finished) return;
    finished = true;
    await ep.close({ force: true });
    await rm(dir, { recursive: true, force: true });
  };
  t.after(done);
  return { dir, target, ep, path, done };
}

export const pattern = (n: number, seed = 1): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
};
