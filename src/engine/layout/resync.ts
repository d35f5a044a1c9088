// A mirror leg's resync: each region the leg misses is copied from an in-sync leg that has it,
// under the range lock application writes take (so a copy never overwrites a newer write),
// written with FUA before the region's bit is cleared; the bitmap is in the state dir, so a cut or
// a restart resumes from the bits left, never from zero. resync-rate caps it (a token bucket of one
// copy); progress is counted per leg and reported at most once a second.
import type { Logger } from '../../util/log.js';
import type { Clock } from '../../util/clock.js';
import { releasePayload } from '../io/payload-pool.js';
import { legTimeoutOf } from '../policy.js';
import type { BlockData, BlockRequest } from '../remote/target.js';
import type { EventFields, EventName, LegShow, Policy } from '../types.js';
import type { LegPort } from './leg-port.js';
import type { RangeLock } from './range-lock.js';
import type { RegionState } from './region-state.js';

/** A leg's place in the mirror (connecting and failed come from the leg's link). */
export type LegMode = 'in-sync' | 'behind' | 'resyncing';

/** resync-progress events at most this often */
const PROGRESS_EVERY_MS = 1000;

/** What a resync asks of its mirror. */
export interface ResyncHost {
  readonly ports: readonly LegPort[];
  readonly rs: RegionState;
  readonly lock: RangeLock;
  readonly size: number;
  readonly regionSize: number;
  readonly clock: Clock;
  readonly log: Logger;
  policy(): Policy;
  emit(event: EventName, fields: EventFields): void;
  modeOf(i: number): LegMode;
  setMode(i: number, to: LegMode, reason: string | null): void;
  /** a connected in-sync leg other than i that holds region r */
  sourceFor(i: number, r: number): number | undefined;
  /** leg i did not answer a copy within leg-timeout: it goes behind (unless it is the last in sync) */
  legTimedOut(i: number): void;
  isClosed(): boolean;
}

interface Progress { done: number; total: number; startedAt: number; lastEventAt: number }

export class Resync {
  private readonly progress: (Progress | null)[];
  /** bytes written to each leg by resync since the node started */
  private readonly copied: number[];
  /** when each leg's next copy is due under resync-rate */
  private readonly nextAt: number[];

  constructor(private readonly h: ResyncHost) {
    const n = h.ports.length;
    this.progress = new Array<null>(n).fill(null);
    this.copied = new Array<number>(n).fill(0);
    this.nextAt = new Array<number>(n).fill(0);
  }

  /** Leg i went behind: a resync of it is over (run() notices at its next copy). */
  stopped(i: number): void {
    this.progress[i] = null;
  }

  show(i: number): Pick<LegShow, 'resync'> & { resyncedBytes: number } {
    const p = this.progress[i];
    if (!p) return { resync: null, resyncedBytes: this.copied[i]! };
    const rate = Math.round(p.done * 1000 / Math.max(1, this.h.clock.now() - p.startedAt));
    return {
      resync: {
        doneBytes: p.done, totalBytes: p.total, bytesPerSecond: rate,
        etaMs: rate > 0 ? Math.round(Math.max(0, p.total - p.done) * 1000 / rate) : null,
      },
      resyncedBytes: this.copied[i]!,
    };
  }

  /** Bring behind leg i (connected) in sync; it ends in-sync, or behind when the copy stops. */
  async run(i: number): Promise<void> {
    const { h } = this;
    const leg = h.ports[i]!.leg;
    if (h.modeOf(i) !== 'behind' || h.isClosed() || leg.phase !== 'ready') return;
    const now0 = h.clock.now();
    const p: Progress = { done: 0, total: h.rs.outOfSyncBytes(i), startedAt: now0, lastEventAt: now0 };
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
      await this.pace(i, length);
      if (!(await this.copyRegion(i, r, offset, length))) break;
      p.done += length;
      this.copied[i]! += length;
      const now = h.clock.now();
      if (now - p.lastEventAt >= PROGRESS_EVERY_MS) {
        p.lastEventAt = now;
        h.emit('resync-progress', { leg: i, doneBytes: p.done, totalBytes: p.total });
      }
      r = h.rs.nextOutOfSync(i, r + 1);
    }
    if (h.modeOf(i) !== 'resyncing') return;
    this.progress[i] = null;
    if (h.rs.nextOutOfSync(i, 0) < 0) {
      const ms = Math.round(h.clock.now() - p.startedAt);
      h.setMode(i, 'in-sync', null);
      h.log.info(`leg ${i}: resync done, ${p.done} bytes in ${ms} ms`, { op: 'resync', leg: i });
      h.emit('resync-done', { leg: i, bytes: p.done, ms });
    } else {
      // stopped (link lost, no source, closed): behind until the leg is back
      h.setMode(i, 'behind', 'resync-interrupted');
    }
  }

  /** resync-rate: wait until this copy's share of the second is due */
  private async pace(i: number, length: number): Promise<void> {
    const rate = this.h.policy().resyncRate;
    if (rate <= 0) return;
    const now = this.h.clock.now();
    const at = Math.max(now, this.nextAt[i]!);
    this.nextAt[i] = at + (length * 1000) / rate;
    if (at > now) await new Promise<void>((resolve) => this.h.clock.setTimer(at - now, resolve));
  }

  /** Copy region r to leg i under the range lock; true when its bit is cleared. */
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
        const data = await this.send(source, { op: 'read', offset: at, length: n, payload: null, fua: false });
        if (data === null) return false;
        const payload = Buffer.isBuffer(data) ? data : Buffer.concat(data);
        const wrote = await this.send(i, { op: 'write', offset: at, length: n, payload, fua: true });
        releasePayload(data);
        if (wrote === null) return false;
      }
      h.rs.clearOutOfSync(i, r);
      return true;
    } finally {
      h.lock.release(held);
    }
  }

  /**
   * One copy request to one leg: its data ([] for a write), or null on an error or when the leg has
   * not answered within leg-timeout, so a copy never waits on a dead leg for the whole deadline.
   */
  private send(i: number, req: BlockRequest): Promise<BlockData | null> {
    return new Promise((resolve) => {
      let answered = false;
      const timer = this.h.clock.setTimer(legTimeoutOf(this.h.policy()), () => {
        answered = true;
        this.h.legTimedOut(i);
        resolve(null);
      });
      this.h.ports[i]!.send(req, (errno, data) => {
        if (answered) {
          if (errno === null) releasePayload(data);
          return;
        }
        answered = true;
        timer.cancel();
        resolve(errno === null ? (data ?? []) : null);
      });
    });
  }
}
