// A mirror leg's resync: each region the leg misses is copied from an in-sync leg that has it,
// under the range lock application writes take (so a copy never overwrites a newer write),
// written with FUA before the region's bit is cleared; the bitmap is in the state dir, so a cut or
// a restart resumes from the bits left, never from zero. The copies of all legs share one token
// bucket whose rate the pace controller (resync-pace.ts) sets from the applications' latency,
// between resync-min-rate and resync-rate; progress is counted per leg and reported at most once a
// second.
// Checksum resync: where the bitmap says nothing about what the leg holds (a new mirror, a state
// file that could not be trusted, a leg that was another disk), every region is marked and the
// leg "compares": a region whose digests (Op.DIGEST, computed on both exports) match is cleared
// without a copy, so a new mirror over blank or already-equal legs copies nothing.
import type { Logger } from '../../util/log.js';
import type { EventFields, EventName, LegShow } from '../types.js';
import { copyRange, digestsOf, type LegIoHost } from './leg-io.js';
import type { RangeLock } from './range-lock.js';
import type { RegionState } from './region-state.js';
import { ResyncPace } from './resync-pace.js';

/** A leg's place in the mirror (connecting and failed come from the leg's link). */
export type LegMode = 'in-sync' | 'behind' | 'resyncing';

/** resync-progress events at most this often */
const PROGRESS_EVERY_MS = 1000;

/** What a resync asks of its mirror. */
export interface ResyncHost extends LegIoHost {
  readonly rs: RegionState;
  readonly lock: RangeLock;
  readonly size: number;
  readonly regionSize: number;
  readonly log: Logger;
  emit(event: EventName, fields: EventFields): void;
  modeOf(i: number): LegMode;
  setMode(i: number, to: LegMode, reason: string | null): void;
  /** a connected in-sync leg other than i that holds region r */
  sourceFor(i: number, r: number): number | undefined;
  isClosed(): boolean;
}

interface Progress { done: number; total: number; startedAt: number; lastEventAt: number }

export class Resync {
  private readonly progress: (Progress | null)[];
  /** bytes written to each leg by resync since the node started */
  private readonly copied: number[];
  /** bytes compared by digest for each leg (checksum resync) since the node started */
  private readonly compared: number[];
  /** when the next copy (of any leg) is due under the pace's rate */
  private nextAt = 0;
  private readonly pacer: ResyncPace;

  constructor(private readonly h: ResyncHost) {
    const n = h.ports.length;
    this.progress = new Array<null>(n).fill(null);
    this.copied = new Array<number>(n).fill(0);
    this.compared = new Array<number>(n).fill(0);
    this.pacer = new ResyncPace(h.clock, () => ({ min: h.policy().resyncMinRate, cap: h.policy().resyncRate }));
  }

  /** An application request to the device took `ms` (what the pace keeps low). */
  appLatency(ms: number): void {
    this.pacer.sample(ms);
  }

  /** Leg i went behind: a resync of it is over (run() notices at its next copy). */
  stopped(i: number): void {
    this.progress[i] = null;
    // the last resync ended: the pace's windows measure the device alone again
    if (this.progress.every((q) => q === null)) this.pacer.stop();
  }

  show(i: number): Pick<LegShow, 'resync'> & { resyncedBytes: number; comparedBytes: number } {
    const p = this.progress[i];
    const counts = { resyncedBytes: this.copied[i]!, comparedBytes: this.compared[i]! };
    if (!p) return { resync: null, ...counts };
    const rate = Math.round(p.done * 1000 / Math.max(1, this.h.clock.now() - p.startedAt));
    return {
      resync: {
        doneBytes: p.done, totalBytes: p.total, bytesPerSecond: rate,
        etaMs: rate > 0 ? Math.round(Math.max(0, p.total - p.done) * 1000 / rate) : null,
        rate: Math.round(this.pacer.rate()),
      },
      ...counts,
    };
  }

  /**
   * Bring behind leg i (connected) in sync; it ends in-sync, or behind when the copy stops. Never
   * rejects (callers start it and go on): a fault in the copy is logged and leaves the leg behind,
   * its regions still marked, rather than ending the engine.
   */
  run(i: number): Promise<void> {
    return this.copyAll(i).catch((err: unknown) => {
      this.stopped(i);
      this.h.log.error(`leg ${i}: resync stopped: ${(err as Error).message}`, { op: 'resync', leg: i });
      if (this.h.modeOf(i) === 'resyncing') this.h.setMode(i, 'behind', 'resync-interrupted');
    });
  }

  private async copyAll(i: number): Promise<void> {
    const { h } = this;
    const leg = h.ports[i]!.leg;
    if (h.modeOf(i) !== 'behind' || h.isClosed() || leg.phase !== 'ready') return;
    const now0 = h.clock.now();
    const p: Progress = { done: 0, total: h.rs.outOfSyncBytes(i), startedAt: now0, lastEventAt: now0 };
    if (this.progress.every((q) => q === null)) {
      this.pacer.start();
      this.nextAt = now0;
    }
    this.progress[i] = p;
    h.setMode(i, 'resyncing', null);
    let r = h.rs.nextOutOfSync(i, 0);
    while (h.modeOf(i) === 'resyncing' && !h.isClosed() && leg.phase === 'ready') {
      if (r < 0) {
        // regions marked behind the cursor meanwhile (writes that failed on this leg)
        r = h.rs.nextOutOfSync(i, 0);
        if (r < 0) break;
      }
      const offset = r * h.regionSize;
      const length = Math.min(h.regionSize, h.size - offset);
      await this.pace(length);
      if (!(await this.copyRegion(i, r, offset, length))) break;
      this.pacer.copied(length);
      p.done += length;
      const now = h.clock.now();
      if (now - p.lastEventAt >= PROGRESS_EVERY_MS) {
        p.lastEventAt = now;
        const { bytesPerSecond, etaMs } = this.show(i).resync!;
        h.emit('resync-progress', {
          leg: i, doneBytes: p.done, totalBytes: p.total, bytesPerSecond, etaMs,
          outOfSyncBytes: h.rs.outOfSyncBytes(i), generation: h.rs.generationOf(i),
        });
      }
      r = h.rs.nextOutOfSync(i, r + 1);
    }
    if (h.modeOf(i) !== 'resyncing') return;
    this.stopped(i);
    if (h.rs.nextOutOfSync(i, 0) < 0) {
      const ms = Math.round(h.clock.now() - p.startedAt);
      h.setMode(i, 'in-sync', null);
      h.log.info(`leg ${i}: resync done, ${p.done} bytes in ${ms} ms (${this.copied[i]} copied, ${this.compared[i]} compared since start)`, { op: 'resync', leg: i });
      h.emit('resync-done', { leg: i, bytes: p.done, ms });
    } else {
      // stopped (link lost, no source, closed): behind until the leg is back
      h.setMode(i, 'behind', 'resync-interrupted');
    }
  }

  /** wait until this copy's share of the second is due at the pace's rate */
  private async pace(length: number): Promise<void> {
    const rate = this.pacer.rate();
    const now = this.h.clock.now();
    const at = Math.max(now, this.nextAt);
    this.nextAt = at + (length * 1000) / rate;
    if (at > now) await new Promise<void>((resolve) => this.h.clock.setTimer(at - now, resolve));
  }

  /**
   * Bring region r of leg i in line under the range lock (compared first when the leg compares
   * and both exports compute digests); true when its bit is cleared.
   */
  private async copyRegion(i: number, r: number, offset: number, length: number): Promise<boolean> {
    const { h } = this;
    const held = await h.lock.lock(offset, offset + length);
    try {
      if (!h.rs.isOutOfSync(i, r)) return true; // cleared meanwhile (nothing to copy)
      const max = h.ports[i]!.leg.maxRequest();
      for (let at = offset; at < offset + length; at += max) {
        const n = Math.min(max, offset + length - at);
        const source = h.sourceFor(i, r);
        if (source === undefined) return false;
        if (h.rs.compares(i) && h.ports[i]!.leg.digests && h.ports[source]!.leg.digests) {
          const [a, b] = await digestsOf(h, [source, i], at, n);
          if (!a || !b) return false;
          this.compared[i]! += n;
          if (a.equals(b)) continue;
        }
        if (!(await copyRange(h, source, i, at, n))) return false;
        this.copied[i]! += n;
      }
      h.rs.clearOutOfSync(i, r);
      return true;
    } finally {
      h.lock.release(held);
    }
  }
}
