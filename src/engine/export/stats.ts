// The counters of one export node (`stats` in `node show`): backend calls in flight (the oldest's
// age, the peak), requests answered and failed, replays, reconnects, bytes moved. Bookkeeping
// only; connections report into it, the node reads it.
import type { Clock } from '../../util/clock.js';
import { Op } from '../../protocol/wire.js';
import type { Stats } from '../types.js';

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

  /** callEnded: a backend call finished (the node may be waiting for idle) */
  constructor(private readonly clock: Clock, private readonly callEnded: () => void) {}

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
    this.answered(status);
    if (op === Op.READ) this.bytesRead += bytes;
    else if (op === Op.WRITE) this.bytesWritten += bytes;
    this.callEnded();
  }

  /** A request answered without reaching the backend (validation refusal, dedup hit), or a call's end. */
  answered(status: number): void {
    this.completed++;
    if (status !== 0) this.failed++;
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
