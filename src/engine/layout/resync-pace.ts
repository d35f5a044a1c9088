// How fast a mirror resyncs (issue 15): a controller that keeps the applications' latency close to
// what it is without resync. Per window it takes the p99 of application request latency (a bounded
// log histogram, metrics/histogram.ts, reset each window) and compares it with the baseline: the
// lowest p99 of the recent windows *without* resync traffic (what the device does alone). While a
// resync runs its windows never enter the baseline — were they to, a latency that creeps up
// slowly would become its own baseline and never cause a back-off — so the last idle baseline is
// kept; a resync that started before any idle window was measured uses the lowest p99 seen since
// it started (which only ever goes down):
// above baseline × (1 + margin) + slack it halves the rate (multiplicative decrease), at baseline it
// adds resync-min-rate, and with no application request in the window it doubles. resync-min-rate
// is the floor, resync-rate (when not 0) the cap; the rate never exceeds twice what the copies
// achieved in the last window, so an unlimited cap shows a rate the legs can really do.
// Pure: latency samples and the clock in, a rate out; no I/O, no timers.
import type { Clock } from '../../util/clock.js';
import { LatencyHistogram } from '../metrics/histogram.js';

export interface PaceLimits {
  /** bytes/s the rate never goes below (resync-min-rate) */
  min: number;
  /** bytes/s the rate never goes above (resync-rate); 0 = no cap */
  cap: number;
}

export interface PaceTuning {
  /** length of one measuring window */
  windowMs: number;
  /** p99 above baseline × (1 + margin) + slackMs is "latency rose" */
  margin: number;
  slackMs: number;
  /** how many recent windows without resync the baseline (their lowest p99) is taken from */
  baselineWindows: number;
  /** a window with fewer samples says nothing about the p99 (neither idle nor loaded) */
  minSamples: number;
}

export const DEFAULT_TUNING: Readonly<PaceTuning> = Object.freeze({
  windowMs: 200, margin: 0.5, slackMs: 1, baselineWindows: 25, minSamples: 8,
});

/** The rate an unlimited cap stands for before any copy was measured (the policy's upper bound). */
const NO_CAP = 1024 ** 4;

/** What the last closed window decided (for tests and logs). */
export type PaceDecision = 'idle' | 'baseline' | 'backoff' | 'few-samples';

export class ResyncPace {
  private readonly tune: PaceTuning;
  private readonly window = new LatencyHistogram();
  private windowStart: number;
  /** p99 of recent windows with enough samples and no resync traffic, newest last */
  private readonly recent: number[] = [];
  /** a resync runs (between start() and stop()) */
  private running = false;
  /** the lowest p99 of windows since the resync started (the baseline while no idle one is known) */
  private lowSinceStart: number | null = null;
  private current: number;
  private copiedInWindow = 0;
  private activeInWindow = false;
  private last: PaceDecision = 'few-samples';

  constructor(private readonly clock: Clock, private readonly limits: () => PaceLimits, tuning: Partial<PaceTuning> = {}) {
    this.tune = { ...DEFAULT_TUNING, ...tuning };
    this.windowStart = clock.now();
    this.current = this.clamp(limits().min);
  }

  /** A resync starts: from the floor, doubling while the device is idle (a slow start). */
  start(): void {
    this.roll();
    this.current = this.clamp(this.limits().min);
    this.running = true;
    this.lowSinceStart = null;
  }

  /** No resync runs any more: the windows from now on measure the device alone. */
  stop(): void {
    this.roll();
    this.running = false;
    this.lowSinceStart = null;
  }

  /** An application request took `ms` (submit → done). */
  sample(ms: number): void {
    this.roll();
    this.window.add(Math.max(0, ms));
  }

  /** A resync copy of `bytes` is done (what the copies achieve bounds the rate). */
  copied(bytes: number): void {
    this.roll();
    this.copiedInWindow += bytes;
    this.activeInWindow = true;
  }

  /** The rate resync may copy at now, bytes/s. */
  rate(): number {
    this.roll();
    return this.clamp(this.current);
  }

  /** The lowest p99 of recent windows without resync (ms); while none is known, of this resync's windows; null before any. */
  baseline(): number | null {
    return this.recent.length > 0 ? Math.min(...this.recent) : this.lowSinceStart;
  }

  decision(): PaceDecision {
    this.roll();
    return this.last;
  }

  /** Close every window that has ended; a gap of several windows without samples is one idle window. */
  private roll(): void {
    const now = this.clock.now();
    if (now - this.windowStart < this.tune.windowMs) return;
    const elapsed = now - this.windowStart;
    this.close(Math.min(elapsed, this.tune.windowMs * 2));
    this.windowStart = now - (elapsed % this.tune.windowMs);
  }

  private close(ms: number): void {
    const { min } = this.limits();
    const p99 = this.window.quantile(0.99);
    const n = this.window.count;
    const base = this.baseline();
    if (n === 0) {
      this.last = 'idle';
      this.current *= 2;
    } else if (n < this.tune.minSamples) {
      this.last = 'few-samples';
    } else if (base !== null && p99 > base * (1 + this.tune.margin) + this.tune.slackMs) {
      this.last = 'backoff';
      this.current /= 2;
    } else {
      this.last = 'baseline';
      this.current += min;
    }
    if (n >= this.tune.minSamples) {
      if (!this.running && !this.activeInWindow) {
        this.recent.push(p99);
        if (this.recent.length > this.tune.baselineWindows) this.recent.shift();
      } else this.lowSinceStart = Math.min(this.lowSinceStart ?? p99, p99);
    }
    if (this.activeInWindow) {
      // never run far ahead of what the copies did (they were not held back by the pacing)
      this.current = Math.min(this.current, Math.max(min, (2 * this.copiedInWindow * 1000) / ms));
    }
    this.current = this.clamp(this.current);
    this.window.reset();
    this.copiedInWindow = 0;
    this.activeInWindow = false;
  }

  private clamp(rate: number): number {
    const { min, cap } = this.limits();
    const hi = cap > 0 ? cap : NO_CAP;
    return Math.max(Math.min(min, hi), Math.min(hi, rate));
  }
}
