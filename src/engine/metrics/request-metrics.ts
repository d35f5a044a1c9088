// Request metrics of one NBD endpoint (a remote node) or one leg of a multi-leg device: per op,
// the latency from arrival to answer (the last 10 s and since start, metrics/histogram.ts) and the
// failures by errno. `node show` reports the summaries, the metrics endpoint the histograms.
// Recording is a clock read, a bucket increment and, on failure only, a map update: nothing is
// allocated per request.
import type { Clock } from '../../util/clock.js';
import type { LegOp } from '../remote/target.js';
import { WindowedLatency, type LatencySummary } from './histogram.js';

/** The ops latencies are kept for: TRIM and WRITE_ZEROES count as trim (both free or zero a range). */
export type LatencyOp = 'read' | 'write' | 'flush' | 'trim';
export const LATENCY_OPS: readonly LatencyOp[] = ['read', 'write', 'flush', 'trim'];

export function latencyOpOf(op: LegOp): LatencyOp | null {
  switch (op) {
    case 'read': case 'write': case 'flush': case 'trim': return op;
    case 'write-zeroes': return 'trim';
    default: return null; // block status and digests are queries, not I/O
  }
}

export type OpLatency = Record<LatencyOp, LatencySummary>;
/** What `node show` carries per node (and per leg). */
export interface LatencyShow {
  recent: OpLatency;
  sinceStart: OpLatency;
}

/** Distinct errnos kept per op: the errno set is small and closed, the cap only keeps memory fixed whatever comes. */
const MAX_ERRNOS = 32;

/** What the NBD transmission loop reports to (BlockTarget.recorder): the arrival time, then the answer. */
export interface RequestRecorder {
  /** the arrival time to hand back to done() */
  now(): number;
  /** `length`: the request's bytes (counted for reads and writes that succeeded) */
  done(op: LegOp, startMs: number, errno: string | null, length: number): void;
}

/** Requests and bytes per second over the last 10 s (or since start, when younger). */
export interface Rates {
  readIops: number;
  writeIops: number;
  readBytesPerSecond: number;
  writeBytesPerSecond: number;
}

const SLOTS = 10;
const SLOT_MS = 1000;

/** Bytes over the last SLOTS × SLOT_MS, in the same slots as WindowedLatency: a slot is cleared when time reaches it again. */
class WindowedBytes {
  private readonly bytes = new Float64Array(SLOTS);
  private readonly slotOf = new Float64Array(SLOTS).fill(-Infinity);
  /** since start */
  total = 0;

  add(now: number, n: number): void {
    this.total += n;
    const slot = Math.floor(now / SLOT_MS);
    const i = slot % SLOTS;
    if (this.slotOf[i] !== slot) {
      this.slotOf[i] = slot;
      this.bytes[i] = 0;
    }
    this.bytes[i]! += n;
  }

  recent(now: number): number {
    const slot = Math.floor(now / SLOT_MS);
    let sum = 0;
    for (let i = 0; i < SLOTS; i++) if (this.slotOf[i]! > slot - SLOTS && this.slotOf[i]! <= slot) sum += this.bytes[i]!;
    return sum;
  }
}

export class RequestMetrics implements RequestRecorder {
  readonly latency = {} as Record<LatencyOp, WindowedLatency>;
  /** failed requests per op and errno */
  readonly errors = {} as Record<LatencyOp, Map<string, number>>;
  private readonly bytes = { read: new WindowedBytes(), write: new WindowedBytes() };

  /** when counting began: the window is no older than this */
  private readonly since: number;

  constructor(private readonly clock: Clock) {
    this.since = clock.now();
    for (const op of LATENCY_OPS) {
      this.latency[op] = new WindowedLatency(SLOTS, SLOT_MS);
      this.errors[op] = new Map();
    }
  }

  now(): number {
    return this.clock.now();
  }

  done(op: LegOp, startMs: number, errno: string | null, length: number): void {
    const o = latencyOpOf(op);
    if (o !== null) this.record(o, startMs, errno, length);
  }

  /** One request of `o` that began at `startMs` and is answered now (`length`: counted for reads and writes that succeeded). */
  record(o: LatencyOp, startMs: number, errno: string | null, length: number): void {
    const now = this.clock.now();
    this.latency[o].add(now, Math.max(0, now - startMs));
    if (errno === null) {
      if (o === 'read' || o === 'write') this.bytes[o].add(now, length);
      return;
    }
    const m = this.errors[o];
    const n = m.get(errno);
    if (n !== undefined) m.set(errno, n + 1);
    else if (m.size < MAX_ERRNOS) m.set(errno, 1);
  }

  /** Bytes of the reads and writes that succeeded, since start: what the clients moved. */
  get bytesRead(): number {
    return this.bytes.read.total;
  }

  get bytesWritten(): number {
    return this.bytes.write.total;
  }

  show(): LatencyShow {
    const now = this.clock.now();
    const recent = {} as OpLatency;
    const sinceStart = {} as OpLatency;
    for (const op of LATENCY_OPS) {
      recent[op] = rounded(this.latency[op].recent(now));
      sinceStart[op] = rounded(this.latency[op].sinceStart());
    }
    return { recent, sinceStart };
  }

  /**
   * The window's requests and bytes per second: divided by the time the window covers (the slots
   * it holds, the current one partly; less while the node is younger than the window), not by 10 s.
   */
  rates(): Rates {
    const now = this.clock.now();
    const from = Math.max(this.since, (Math.floor(now / SLOT_MS) - SLOTS + 1) * SLOT_MS);
    const s = Math.max(1, now - from) / 1000;
    return {
      readIops: this.latency.read.recent(now).count / s,
      writeIops: this.latency.write.recent(now).count / s,
      readBytesPerSecond: this.bytes.read.recent(now) / s,
      writeBytesPerSecond: this.bytes.write.recent(now) / s,
    };
  }
}

/** Microsecond precision is all the buckets hold; fewer digits read better. */
function rounded(s: LatencySummary): LatencySummary {
  const us = (ms: number): number => Math.round(ms * 1000) / 1000;
  return { p50Ms: us(s.p50Ms), p99Ms: us(s.p99Ms), maxMs: us(s.maxMs), count: s.count };
}

/** What a leg without a port yet (being assembled) shows: nothing measured. */
export function emptyLatencyShow(): LatencyShow {
  const none = (): OpLatency => Object.fromEntries(LATENCY_OPS.map((op) => [op, { p50Ms: 0, p99Ms: 0, maxMs: 0, count: 0 }])) as OpLatency;
  return { recent: none(), sinceStart: none() };
}
