// Latency histograms: fixed, log-linear buckets (4 per power of two of microseconds, up to 2^26 µs,
// about 67 s; slower samples land in the last bucket), so memory is bounded and recording is an
// index computation and an increment, with no allocation. A bucket holds (lower edge, upper edge],
// as Prometheus reads `le`: a sample exactly on an edge is in the bucket that edge closes.
// Quantiles are reported as the upper edge of the bucket they fall in (at most 25 % above the true
// value); the maximum is exact.
// Used by the resync pace (its p99 per window) and by the request latencies of `node show` and
// the metrics endpoint (a window of recent seconds and the total since start).
// Pure: samples in, numbers out; time only as the caller passes it.

const SUB = 4;
export const BUCKETS = 27 * SUB;
/** how far above an edge (in quarter octaves, about 2.5e-10 of the value) a sample still counts as on it */
const ON_EDGE = 1e-9;

/** The bucket of a sample in µs: the first whose upper edge is ≥ it (bucket 0: up to 1 µs). */
function bucketOf(us: number): number {
  if (us <= 1) return 0;
  const e = Math.floor(Math.log2(us));
  // an exact power of two closes the previous octave's last bucket (ceil of 0 is 0); ON_EDGE keeps
  // an edge given in ms (its µs a rounding error above) in the bucket it closes
  return Math.min(BUCKETS - 1, e * SUB + Math.ceil((us / 2 ** e - 1) * SUB - ON_EDGE));
}

/** The upper edge of bucket b in ms. */
export function edgeMs(b: number): number {
  if (b === 0) return 0.001;
  const e = Math.floor((b - 1) / SUB);
  const sub = (b - 1) % SUB;
  return (2 ** e * (1 + (sub + 1) / SUB)) / 1000;
}

/** A bounded latency histogram. */
export class LatencyHistogram {
  readonly counts = new Float64Array(BUCKETS);
  private n = 0;
  /** sum of the samples, ms */
  sumMs = 0;
  maxMs = 0;

  add(ms: number): void {
    this.counts[bucketOf(ms * 1000)]!++;
    this.n++;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  get count(): number {
    return this.n;
  }

  /** The q-quantile in ms (the upper edge of its bucket, never above the maximum); 0 when empty. */
  quantile(q: number): number {
    if (this.n === 0) return 0;
    const want = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b]!;
      // the last bucket is open-ended: its samples are known only by the maximum
      if (seen >= want) return b === BUCKETS - 1 ? this.maxMs : Math.min(edgeMs(b), this.maxMs);
    }
    return this.maxMs;
  }

  /** Add another histogram's samples to this one. */
  merge(other: LatencyHistogram): void {
    for (let b = 0; b < BUCKETS; b++) this.counts[b]! += other.counts[b]!;
    this.n += other.n;
    this.sumMs += other.sumMs;
    if (other.maxMs > this.maxMs) this.maxMs = other.maxMs;
  }

  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.sumMs = 0;
    this.maxMs = 0;
  }
}

/** p50, p99 and maximum in ms, and how many samples they come from. */
export interface LatencySummary {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  count: number;
}

export function summarize(h: LatencyHistogram): LatencySummary {
  return { p50Ms: h.quantile(0.5), p99Ms: h.quantile(0.99), maxMs: h.maxMs, count: h.count };
}

/**
 * Latency since start and over the last `slots` × `slotMs` (default 10 × 1 s): one histogram per
 * slot, the slots a sample's time skipped cleared as it lands, so no timer is needed.
 */
export class WindowedLatency {
  readonly total = new LatencyHistogram();
  private readonly ring: LatencyHistogram[];
  /** the slot number (time / slotMs) each ring entry holds */
  private readonly slotOf: number[];
  private readonly scratch = new LatencyHistogram();

  constructor(private readonly slots = 10, private readonly slotMs = 1000) {
    this.ring = Array.from({ length: slots }, () => new LatencyHistogram());
    this.slotOf = new Array<number>(slots).fill(-Infinity);
  }

  /** One sample of `ms`, finished at time `now` (ms). */
  add(now: number, ms: number): void {
    this.total.add(ms);
    this.current(now).add(ms);
  }

  private current(now: number): LatencyHistogram {
    const slot = Math.floor(now / this.slotMs);
    const i = ((slot % this.slots) + this.slots) % this.slots;
    if (this.slotOf[i] !== slot) {
      this.ring[i]!.reset();
      this.slotOf[i] = slot;
    }
    return this.ring[i]!;
  }

  /** The last window's samples as of `now`. */
  recent(now: number): LatencySummary {
    const slot = Math.floor(now / this.slotMs);
    this.scratch.reset();
    this.ring.forEach((h, i) => {
      if (this.slotOf[i]! > slot - this.slots && this.slotOf[i]! <= slot) this.scratch.merge(h);
    });
    return summarize(this.scratch);
  }

  sinceStart(): LatencySummary {
    return summarize(this.total);
  }
}
