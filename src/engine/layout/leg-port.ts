// One leg as a multi-leg device sees it: a bounded FIFO in front of the leg's transaction table
// (a device request may need a slot on a leg whose pool is full while the other legs have room),
// drained when the leg's capacity returns, and the leg's own counters for `node show`.
// A leg that failed (wrong identity, shrank) answers EIO at once instead of queueing.
import type { Leg } from '../remote/leg.js';
import type { BlockData, BlockDone, LegRequest } from '../remote/target.js';
import { dataLength } from '../remote/target.js';
import type { LegStats } from '../types.js';
import { RequestMetrics } from '../metrics/request-metrics.js';

interface Waiting {
  req: LegRequest;
  done: BlockDone;
}

export class LegPort {
  private readonly fifo: Waiting[] = [];
  private head = 0;
  /** requests submitted to the leg or waiting here, not yet done */
  outstanding = 0;
  readonly counters: Pick<LegStats, 'reads' | 'writes' | 'bytesRead' | 'bytesWritten' | 'failed'> = { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, failed: 0 };
  /** latency from send to done, per op (node show's legs[i].latency, the metrics endpoint) */
  readonly metrics: RequestMetrics;
  private readonly unsubscribe: () => void;

  /** `limit`: most requests waiting here (the device bounds what it has in flight, so this is never reached) */
  constructor(readonly index: number, readonly leg: Leg, private readonly limit: () => number) {
    this.metrics = new RequestMetrics(leg.clock);
    this.unsubscribe = leg.onCapacity(() => this.drain());
  }

  close(): void {
    this.unsubscribe();
  }

  /** Send one request to the leg (now, or when it has room). done runs exactly once. */
  send(req: LegRequest, done: BlockDone): void {
    this.outstanding++;
    const start = this.metrics.now();
    const finish: BlockDone = (errno, data) => {
      this.outstanding--;
      this.count(req, errno, data);
      this.metrics.done(req.op, start, errno, req.length);
      done(errno, data);
    };
    if (this.leg.phase === 'failed' || this.leg.table === null) {
      queueMicrotask(() => finish('EIO', null));
      return;
    }
    if (this.head === this.fifo.length && this.leg.hasCapacity()) {
      this.leg.submit(req, finish);
      return;
    }
    if (this.fifo.length - this.head >= this.limit()) {
      // the device's own in-flight bound makes this unreachable; refuse rather than grow
      queueMicrotask(() => finish('EAGAIN', null));
      return;
    }
    this.fifo.push({ req, done: finish });
  }

  private drain(): void {
    while (this.head < this.fifo.length) {
      if (this.leg.phase === 'failed' || this.leg.table === null) {
        const w = this.fifo[this.head++]!;
        w.done('EIO', null);
        continue;
      }
      if (!this.leg.hasCapacity()) break;
      const w = this.fifo[this.head++]!;
      this.leg.submit(w.req, w.done);
    }
    if (this.head === this.fifo.length) {
      this.fifo.length = 0;
      this.head = 0;
    }
  }

  /** Fail what waits here (the leg failed or the node stops). */
  failWaiting(errno: string): void {
    const waiting = this.fifo.splice(this.head);
    this.fifo.length = 0;
    this.head = 0;
    for (const w of waiting) w.done(errno, null);
  }

  /** Run the FIFO again (the leg's phase moved). */
  kick(): void {
    this.drain();
  }

  private count(req: LegRequest, errno: string | null, data: BlockData | null): void {
    if (errno !== null) {
      this.counters.failed++;
      return;
    }
    if (req.op === 'read') {
      this.counters.reads++;
      this.counters.bytesRead += data === null ? 0 : dataLength(data);
    } else if (req.op === 'write' || req.op === 'write-zeroes') {
      this.counters.writes++;
      this.counters.bytesWritten += req.length;
    }
  }
}
