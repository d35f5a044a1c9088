// The counters of one export node (`stats` in `node show`): backend calls in flight (the oldest's
// age, the peak), requests answered and failed, replays, reconnects, bytes moved; and per op the
// requests, errors by errno and latency from arrival to answer (`latency` in `node show`, the
// metrics endpoint, the rates of `status` and `dst top`). Bookkeeping only; connections report
// into it, the node reads it.
import type { Clock } from '../../util/clock.js';
import { errnoName } from '../../util/errors.js';
import { Op } from '../../protocol/wire.js';
import type { Stats } from '../types.js';
import { RequestMetrics, type LatencyOp } from '../metrics/request-metrics.js';

/** The latency op of each wire op (indexed by Op); block status and digests are queries, not I/O. */
const LATENCY_OP: readonly (LatencyOp | null)[] = [null, 'read', 'write', 'flush', 'trim', 'trim', null, null];

/** One backend call in flight. */
export interface CallToken {
  readonly start: number;
}

export class ExportStats {
  /** in issue order: the first is the oldest */
  private readonly calls = new Set<CallToken>();
  private inflightPeak = 0;
  private completed = 0;
  private replays = 0;
  private failed = 0;
  private reconnects = 0;
  private bytesRead = 0;
  private bytesWritten = 0;

  /** per op: requests, errors, latency, bytes in the last 10 s */
  readonly metrics: RequestMetrics;

  /** callEnded: a backend call finished (the node may be waiting for idle) */
  constructor(private readonly clock: Clock, private readonly callEnded: () => void) {
    this.metrics = new RequestMetrics(clock);
  }

  /** Backend calls in flight. */
  get inflight(): number {
    return this.calls.size;
  }

  beginCall(): CallToken {
    const token = { start: this.clock.now() };
    this.calls.add(token);
    if (this.calls.size > this.inflightPeak) this.inflightPeak = this.calls.size;
    return token;
  }

  endCall(token: CallToken, op: Op, bytes: number, status: number): void {
    this.calls.delete(token);
    this.count(op, token.start, status, bytes);
    if (op === Op.READ) this.bytesRead += bytes;
    else if (op === Op.WRITE) this.bytesWritten += bytes;
    this.callEnded();
  }

  /** A request answered without reaching the backend (validation refusal, dedup hit). */
  answered(op: Op, status: number): void {
    this.count(op, this.clock.now(), status, 0);
  }

  private count(op: Op, start: number, status: number, bytes: number): void {
    this.completed++;
    if (status !== 0) this.failed++;
    const o = LATENCY_OP[op] ?? null;
    if (o !== null) this.metrics.record(o, start, status === 0 ? null : errnoName(status), bytes);
  }

  replayed(): void {
    this.replays++;
  }

  reconnected(): void {
    this.reconnects++;
  }

  snapshot(): Stats {
    let oldest: number | null = null;
    for (const c of this.calls) { oldest = Math.max(0, Math.round(this.clock.now() - c.start)); break; } // whole ms: the netlink field is an integer
    return {
      inflight: this.calls.size,
      inflightPeak: this.inflightPeak,
      completed: this.completed,
      resends: 0,
      replayed: this.replays,
      failed: this.failed,
      reconnects: this.reconnects,
      bytesRead: this.bytesRead,
      bytesWritten: this.bytesWritten,
      oldestInflightMs: oldest,
    };
  }
}
