// Online verify of a mirror (issue 15): every region is compared across the in-sync legs by digest
// (Op.DIGEST, computed on each export: only 32 bytes per piece cross the network), under the range
// lock that writes and resync take, so a write in flight can never make two legs look different —
// no false positives. A mismatch is reported; with repair, the region is copied from the leg named
// by `from`, or (three or more legs) from the digest most legs agree on. Which leg is right is
// never guessed: two legs that differ without `from` are reported, not repaired.
// verify-interval schedules report-only passes: the next one an interval after the last pass
// (scheduled or not) ended, so passes never overlap and a long pass does not make them back up.
// node show keeps the last pass's first mismatching regions, so a scheduled pass's findings are not
// only in the log.
import type { TimerHandle } from '../../util/clock.js';
import { DstError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import type { EventFields, EventName, VerifyMismatch, VerifyOptions, VerifyReport, VerifyShow } from '../types.js';
import { copyRange, digestsOf, type LegIoHost } from './leg-io.js';
import type { RangeLock } from './range-lock.js';

/** verify-progress events at most this often */
const PROGRESS_EVERY_MS = 1000;
/** mismatches listed in a report (all are counted, repaired and logged) */
export const MAX_LISTED_MISMATCHES = 10_000;
/** mismatches node show keeps of a pass (its `truncated` says when there were more) */
export const MAX_SHOWN_MISMATCHES = 64;

export interface VerifyHost extends LegIoHost {
  readonly lock: RangeLock;
  readonly size: number;
  readonly regionSize: number;
  readonly log: Logger;
  emit(event: EventName, fields: EventFields): void;
  /** in-sync legs that are connected now */
  inSyncReady(): number[];
  isClosed(): boolean;
}

export class Verifier {
  private current: VerifyShow | null = null;
  /** the next scheduled pass, while verify-interval is on and no pass runs */
  private timer: TimerHandle | null = null;
  /** the verify-interval the schedule follows (other policy keys changing do not move it) */
  private interval = 0;

  constructor(private readonly h: VerifyHost) {
    this.schedule();
  }

  /** The policy changed: a new verify-interval counts from now (0 turns the schedule off). */
  policyChanged(): void {
    if (this.h.policy().verifyIntervalMs !== this.interval) this.schedule();
  }

  close(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** The running pass, or the last one (null before the first). */
  show(): VerifyShow | null {
    return this.current ? { ...this.current, mismatchList: [...this.current.mismatchList] } : null;
  }

  /** One pass over the device; refuses to start when it could not compare or repair as asked. */
  async run(o: VerifyOptions, what = 'verify'): Promise<VerifyReport> {
    const { h } = this;
    if (this.current?.running) throw new DstError('DST_ERR_BUSY', 'node verify: a verify pass is running already', { errno: 'EBUSY' });
    const legs = h.inSyncReady();
    if (legs.length < 2) {
      throw new DstError('DST_ERR_INVALID', `node verify: needs two connected in-sync legs to compare, has ${legs.length}`, { errno: 'EAGAIN' });
    }
    const old = legs.filter((i) => !h.ports[i]!.leg.digests);
    if (old.length > 0) {
      throw new DstError('DST_ERR_INVALID', `node verify: the export of leg ${old.join(', ')} does not compute digests (an older dst)`, { errno: 'ENOTSUP' });
    }
    if (o.from !== null && !legs.includes(o.from)) {
      throw new DstError('DST_ERR_INVALID', `node verify: --from ${o.from} is not a connected in-sync leg (those are ${legs.join(', ')})`, { errno: 'EINVAL' });
    }
    if (o.repair && o.from === null && legs.length === 2) {
      throw new DstError('DST_ERR_INVALID', 'node verify: with two legs, --repair needs --from LEG: which leg is right is not guessed', { errno: 'EINVAL' });
    }
    const started = h.clock.now();
    const cur: VerifyShow = {
      running: true, doneBytes: 0, totalBytes: h.size, mismatches: 0, repaired: 0, bytesPerSecond: 0, etaMs: null, mismatchList: [], truncated: false,
    };
    this.current = cur;
    const mismatches: VerifyMismatch[] = [];
    let lastEvent = started;
    let regions = 0;
    try {
      for (let offset = 0; offset < h.size; offset += h.regionSize) {
        if (h.isClosed()) throw new DstError('DST_ERR_CLOSED', 'node verify: the node stopped', { errno: 'ESHUTDOWN' });
        const length = Math.min(h.regionSize, h.size - offset);
        const found = await this.region(offset, length, o);
        regions++;
        if (found) {
          cur.mismatches++;
          if (found.repaired) cur.repaired++;
          if (mismatches.length < MAX_LISTED_MISMATCHES) mismatches.push(found.mismatch);
          if (cur.mismatchList.length < MAX_SHOWN_MISMATCHES) cur.mismatchList.push(found.mismatch);
          else cur.truncated = true;
        }
        cur.doneBytes += length;
        const now = h.clock.now();
        cur.bytesPerSecond = Math.round((cur.doneBytes * 1000) / Math.max(1, now - started));
        cur.etaMs = cur.bytesPerSecond > 0 ? Math.round(((cur.totalBytes - cur.doneBytes) * 1000) / cur.bytesPerSecond) : null;
        if (now - lastEvent >= PROGRESS_EVERY_MS) {
          lastEvent = now;
          h.emit('verify-progress', { doneBytes: cur.doneBytes, totalBytes: cur.totalBytes, bytesPerSecond: cur.bytesPerSecond, etaMs: cur.etaMs });
        }
      }
    } finally {
      cur.running = false;
      cur.etaMs = null;
      this.schedule();
    }
    const ms = Math.round(h.clock.now() - started);
    h.log.info(`${what} done: ${regions} regions, ${cur.mismatches} mismatching, ${cur.repaired} repaired, ${ms} ms`, { op: 'verify' });
    h.emit('verify-done', { regions, mismatches: cur.mismatches, repaired: cur.repaired, ms });
    return { regions, mismatches, repaired: cur.repaired };
  }

  /** Arm the next scheduled pass one verify-interval from now; none while a pass runs (its end arms it). */
  private schedule(): void {
    this.close();
    this.interval = this.h.policy().verifyIntervalMs;
    if (this.interval <= 0 || this.h.isClosed() || this.current?.running) return;
    this.timer = this.h.clock.setTimer(this.interval, () => {
      this.timer = null;
      this.scheduled();
    });
  }

  /** A scheduled pass: report only, never repair (which leg is right is the operator's call). */
  private scheduled(): void {
    if (this.h.isClosed() || this.current?.running) return;
    const last = this.current;
    this.run({ repair: false, from: null }, 'scheduled verify').catch((err: unknown) => {
      const msg = err instanceof Error ? err.message : String(err);
      if (this.current !== last) {
        // the pass started and stopped (a leg left, the node stopped); its end armed the next
        this.h.log.warn(`scheduled verify: ${msg}`, { op: 'verify' });
        return;
      }
      // refused before it started (fewer than two in-sync legs, an older export): the mirror is
      // not in a state to compare; try again an interval later
      this.h.log.debug(`scheduled verify skipped: ${msg}`, { op: 'verify' });
      this.schedule();
    });
  }

  /** Compare (and repair) one region under the range lock; null when every leg agrees. */
  private async region(offset: number, length: number, o: VerifyOptions): Promise<{ mismatch: VerifyMismatch; repaired: boolean } | null> {
    const { h } = this;
    const held = await h.lock.lock(offset, offset + length);
    try {
      const legs = h.inSyncReady();
      if (legs.length < 2) throw new DstError('DST_ERR_IO', `node verify: stopped at offset ${offset}: fewer than two in-sync legs left`, { errno: 'EIO' });
      const max = Math.min(...legs.map((i) => h.ports[i]!.leg.maxRequest()));
      // per leg, the digests of the region's pieces joined: equal strings = equal bytes
      const sums = legs.map(() => '');
      for (let at = offset; at < offset + length; at += max) {
        const got = await digestsOf(h, legs, at, Math.min(max, offset + length - at));
        const failed = legs.filter((_, k) => got[k] === null);
        if (failed.length > 0) throw new DstError('DST_ERR_IO', `node verify: stopped at offset ${at}: leg ${failed.join(', ')} did not answer a digest`, { errno: 'EIO' });
        got.forEach((d, k) => { sums[k] += d!.toString('hex'); });
      }
      const groups = new Map<string, number[]>();
      legs.forEach((leg, k) => groups.set(sums[k]!, [...(groups.get(sums[k]!) ?? []), leg]));
      if (groups.size === 1) return null;
      const majority = [...groups.values()].find((g) => g.length * 2 > legs.length) ?? null;
      const wrong = majority ? legs.filter((i) => !majority.includes(i)) : legs;
      const mismatch: VerifyMismatch = { offset, length, legs: wrong };
      h.log.warn(`verify: region at offset ${offset} (${length} bytes) differs on leg ${wrong.join(', ')}`, { op: 'verify' });
      if (!o.repair) return { mismatch, repaired: false };
      const source = o.from ?? majority?.[0] ?? null;
      if (source === null) {
        h.log.warn(`verify: region at offset ${offset}: no digest has a majority; repair it with --from LEG`, { op: 'verify' });
        return { mismatch, repaired: false };
      }
      const sourceSum = sums[legs.indexOf(source)]!;
      const targets = legs.filter((_, k) => sums[k] !== sourceSum);
      for (const i of targets) {
        for (let at = offset; at < offset + length; at += max) {
          const n = Math.min(max, offset + length - at);
          if (!(await copyRange(h, source, i, at, n))) {
            throw new DstError('DST_ERR_IO', `node verify: repair of offset ${at} from leg ${source} to leg ${i} failed`, { errno: 'EIO' });
          }
        }
      }
      h.log.warn(`verify: repaired region at offset ${offset} on leg ${targets.join(', ')} from leg ${source}`, { op: 'verify' });
      return { mismatch, repaired: true };
    } finally {
      h.lock.release(held);
    }
  }
}
