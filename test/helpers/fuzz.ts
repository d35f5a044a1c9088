// Shared pieces of the fuzz suite (test/fuzz/): a seeded PRNG and byte mutators, the case runner
// (batches, seed printed on failure), a raw socket for hostile peers, a per-class counter of the
// rejection paths reached, RSS sampling of an engine process, the legitimate client's
// deterministic blocks, and fuzzEngine, the frame every fuzz file runs its cases in.
//
// Every case draws from its own PRNG seeded with `seed + i`, so one case replays alone:
//   DST_FUZZ_SEED=<case seed> DST_FUZZ_CASES=1 node --test dist/test/fuzz/<file>.test.js
// A long soak: DST_FUZZ_CASES=20000 (and any DST_FUZZ_SEED).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { blocksContent, checkBlocks, DEFAULT_BLOCK_SIZE } from './blocks.js';
import type { Engine } from './engine.js';
import { POOL_MAX_FREE } from '../../src/engine/io/payload-pool.js';

export interface FuzzConfig {
  cases: number;
  seed: number;
}

/** Cases and seed for one fuzz file: DST_FUZZ_CASES / DST_FUZZ_SEED override the file's defaults. */
export function fuzzConfig(defaultCases: number, defaultSeed: number): FuzzConfig {
  const num = (name: string, dflt: number): number => {
    const v = process.env[name];
    if (v === undefined || v === '') return dflt;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${v}: expected a non-negative integer`);
    return n;
  };
  return { cases: num('DST_FUZZ_CASES', defaultCases), seed: num('DST_FUZZ_SEED', defaultSeed) };
}

/** mulberry32: small, fast, good enough to pick fuzz inputs; same seed, same stream. */
export class Rng {
  private s: number;

  constructor(seed: number) {
    this.s = (seed ^ 0x9e3779b9) >>> 0;
  }

  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** integer in [0, n) */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }

  /** a u32 that tends to sit on a boundary */
  interesting(): number {
    return this.pick([0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, this.u32()]) >>> 0;
  }
}

/** One to four random edits of a copy of `buf`: bit flips, byte sets, boundary words, cuts, inserts, repeats. */
export function mutate(rng: Rng, buf: Buffer): Buffer {
  let b = Buffer.from(buf);
  const edits = 1 + rng.int(4);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(7)) {
      case 0: if (b.length) b[at % b.length]! ^= 1 << rng.int(8); break;
      case 1: if (b.length) b[at % b.length] = rng.u32() & 0xff; break;
      case 2: if (b.length >= 4) b.writeUInt32BE(rng.interesting(), Math.min(at, b.length - 4)); break;
      case 3: if (b.length >= 2) b.writeUInt16BE(rng.interesting() & 0xffff, Math.min(at, b.length - 2)); break;
      case 4: b = b.subarray(0, at); break;
      case 5: b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(16)), b.subarray(at)]); break;
      default: { const len = rng.int(Math.min(32, b.length - at) + 1); b = Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]); }
    }
  }
  return b;
}

/** Counts per rejection class; fails naming the classes no case reached. */
export class ClassCounter {
  readonly counts = new Map<string, number>();

  add(cls: string, n = 1): void {
    this.counts.set(cls, (this.counts.get(cls) ?? 0) + n);
  }

  /** Count every line of `text` (that `keep` selects) by the first class whose pattern matches it. */
  addLines(text: string, keep: (line: string) => boolean, table: readonly (readonly [string, RegExp])[]): void {
    for (const line of text.split('\n')) {
      if (!keep(line)) continue;
      const hit = table.find(([, re]) => re.test(line));
      if (hit) this.add(hit[0]);
    }
  }

  summary(): string {
    return [...this.counts].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(' ');
  }

  assertReached(expected: readonly string[], what: string): void {
    const missing = expected.filter((c) => !this.counts.get(c));
    assert.deepEqual(missing, [], `${what}: rejection classes never reached: ${missing.join(', ')}; reached: ${this.summary()}`);
  }
}

/** Resident set size of a process, in bytes (from /proc/PID/status). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

const MiB = 1024 * 1024;
export const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

/** RSS of one process: baseline, peak of the samples, and a bounded wait for it to settle. */
export class RssWatch {
  readonly baseline: number;
  peak: number;

  constructor(private readonly pid: number) {
    this.baseline = this.peak = rssBytes(pid);
  }

  sample(): number {
    const r = rssBytes(this.pid);
    if (r > this.peak) this.peak = r;
    return r;
  }

  /** Assert the peak stayed under baseline + maxGrowth, and that RSS falls back under baseline + settle within 5 s. */
  async assertBounded(what: string, maxGrowth: number, settle: number): Promise<string> {
    let now = this.sample();
    for (const deadline = Date.now() + 5000; now > this.baseline + settle && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 100));
      now = this.sample();
    }
    const figures = `RSS baseline ${mib(this.baseline)}, peak ${mib(this.peak)}, after ${mib(now)}`;
    assert.ok(this.peak <= this.baseline + maxGrowth, `${what}: ${figures}: grew more than ${mib(maxGrowth)}`);
    assert.ok(now <= this.baseline + settle, `${what}: ${figures}: not back within ${mib(settle)} of the baseline`);
    return figures;
  }
}

export interface RunCasesOptions {
  what: string;
  config: FuzzConfig;
  /** cases run this many at a time (each on its own connection) */
  concurrency: number;
  /** one case; throws only for a test failure (a refused or closed connection is the normal outcome) */
  run(rng: Rng, caseSeed: number): Promise<void>;
  /** after each batch: the engine is alive and serving (throws otherwise) */
  check(): Promise<void>;
}

/** Run the cases in batches; any failure names the seeds that reproduce it. */
export async function runCases(o: RunCasesOptions): Promise<void> {
  const { cases, seed } = o.config;
  for (let first = 0; first < cases; first += o.concurrency) {
    const seeds: number[] = [];
    for (let i = first; i < Math.min(cases, first + o.concurrency); i++) seeds.push(seed + i);
    const replay = (s: number): string => `DST_FUZZ_SEED=${s} DST_FUZZ_CASES=1`;
    const results = await Promise.allSettled(seeds.map((s) => o.run(new Rng(s), s)));
    results.forEach((r, k) => {
      if (r.status === 'rejected') throw new Error(`${o.what}: case seed ${seeds[k]} failed (replay: ${replay(seeds[k]!)}): ${(r.reason as Error)?.stack ?? r.reason}`);
    });
    try {
      await o.check();
    } catch (err) {
      throw new Error(`${o.what}: after the cases with seeds ${seeds.join(', ')} (replay each: ${replay(seeds[0]!)} …): ${(err as Error).message}`);
    }
  }
}

/**
 * A hostile peer's raw connection: writes what it is told, keeps every byte the other side sends,
 * and waits for bytes or the close with a bound (never for longer than the case allows).
 */
export class RawPeer {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      // bounded: a fuzz peer never needs more than the start of what it is sent
      if (this.buf.length < 4 * MiB) this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', () => { this.ended = true; this.wake?.(); resolve(); }));
  }

  static open(target: string | { host: string; port: number; localAddress?: string }): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = typeof target === 'string' ? connect(target) : connect(target);
      s.once('connect', () => { s.off('error', reject); resolve(new RawPeer(s)); });
      s.once('error', reject);
    });
  }

  /** everything received so far (not consumed) */
  get received(): Buffer {
    return this.buf;
  }

  /** drop the first n received bytes */
  consume(n: number): Buffer {
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  write(b: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(b);
  }

  /** Wait until `ready(received)` holds, the peer closed, or timeoutMs passed; true = ready. */
  async until(ready: (b: Buffer) => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!ready(this.buf)) {
      const left = deadline - Date.now();
      if (this.ended || left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
      this.wake = null;
    }
    return true;
  }

  /** Send our FIN and wait (bounded) for the other side to close; then make sure it is gone. */
  async finish(timeoutMs: number): Promise<boolean> {
    this.socket.end();
    await this.until(() => false, timeoutMs);
    const closedByPeer = this.ended;
    this.socket.destroy();
    return closedByPeer;
  }
}

/** The legitimate client's data: `count` deterministic blocks from block `first`, at `version`. */
export interface LegitIo {
  write(offset: number, data: Buffer): Promise<void>;
  read(offset: number, length: number): Promise<Buffer>;
}

export async function writeLegit(io: LegitIo, first: number, count: number, version: number): Promise<void> {
  await io.write(first * DEFAULT_BLOCK_SIZE, blocksContent(first, version, count));
}

/** Read the blocks back and check every one is at `version` (names the block that is not). */
export async function verifyLegit(io: LegitIo, first: number, count: number, version: number, what: string): Promise<void> {
  const data = await io.read(first * DEFAULT_BLOCK_SIZE, count * DEFAULT_BLOCK_SIZE);
  const versions = checkBlocks(data, first);
  const wrong = versions.findIndex((v) => v !== version);
  assert.equal(wrong, -1, `${what}: block ${first + wrong} is at version ${versions[wrong]}, expected ${version}`);
}

export interface FuzzEngineOptions {
  what: string;
  config: FuzzConfig;
  concurrency: number;
  /** the engine under fuzz (a separate process: its RSS is sampled) */
  engine: Engine;
  /** the legitimate client: its blocks (0..LEGIT_BLOCKS) are written before and checked during and after */
  legit: LegitIo;
  run(rng: Rng, caseSeed: number): Promise<void>;
  /** more checks every few batches (e.g. the control socket still answers) */
  alsoCheck?: () => Promise<void>;
}

export const LEGIT_BLOCKS = 64;
const CHECK_EVERY = 6;

/**
 * RSS bounds. The payload pool keeps up to POOL_MAX_FREE bytes of freed payloads by design, and the
 * heap grows a little under load: soaks level off there (wire, none: +43 MiB after 40 000 cases,
 * peak +61 MiB; +4 to +10 MiB after the default 240). A leak grows past these.
 */
const RSS_PEAK_GROWTH = POOL_MAX_FREE + 64 * MiB;
const RSS_SETTLED_GROWTH = POOL_MAX_FREE + 32 * MiB;

/**
 * The frame of every fuzz file: legitimate blocks written, the cases run while the engine is
 * checked alive (and the blocks verified every few batches), then the blocks verified, rewritten and
 * verified again, and the engine's RSS bounded (RSS_PEAK_GROWTH; back within RSS_SETTLED_GROWTH of
 * the baseline within 5 s). Returns the RSS figures.
 */
export async function fuzzEngine(o: FuzzEngineOptions): Promise<string> {
  await writeLegit(o.legit, 0, LEGIT_BLOCKS, 1);
  const rss = new RssWatch(o.engine.pid);
  let batch = 0;
  await runCases({
    what: o.what, config: o.config, concurrency: o.concurrency, run: o.run,
    check: async () => {
      assert.equal(o.engine.exited, false, `the engine exited: ${JSON.stringify(o.engine.exitStatus)}`);
      rss.sample();
      if (++batch % CHECK_EVERY === 0) {
        await verifyLegit(o.legit, 0, LEGIT_BLOCKS, 1, 'during the fuzz');
        await o.alsoCheck?.();
      }
    },
  });
  await verifyLegit(o.legit, 0, LEGIT_BLOCKS, 1, 'after the fuzz');
  await writeLegit(o.legit, 0, LEGIT_BLOCKS, 2);
  await verifyLegit(o.legit, 0, LEGIT_BLOCKS, 2, 'a new write after the fuzz');
  return rss.assertBounded(o.what, RSS_PEAK_GROWTH, RSS_SETTLED_GROWTH);
}

/** Peer text meant to forge a log line or garble a terminal (newline, CR, NUL, ESC). */
export const PEER_TEXT: readonly string[] = ['x\n2026-01-01T00:00:00.000Z error node vol: FORGED', 'a\r\nb', 'nul\0byte', '\x1b[31mred\x1b[0m'];

/** Every line of an engine log is one of its own (starts with a timestamp) and holds no raw control byte. */
export function assertCleanLog(log: string, what: string): void {
  const lines = log.split('\n').filter((l) => l !== '');
  const forged = lines.filter((l) => !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(l));
  assert.deepEqual(forged.slice(0, 3), [], `${what}: ${forged.length} log line(s) do not start with the engine's timestamp`);
  const raw = lines.filter((l) => /[\x00-\x09\x0b-\x1f\x7f]/.test(l)); // tab and CR included
  assert.deepEqual(raw.slice(0, 3).map((l) => JSON.stringify(l)), [], `${what}: ${raw.length} log line(s) hold raw control bytes`);
}
