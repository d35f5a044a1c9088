// Pure helpers of the bench: medians, and the merging of repeated runs into one row per case.
// No I/O, so test/unit/bench-stats.test.ts checks them without running a benchmark.

export interface Row { system: string; workload: string; mibps: number; iops: number; p50us: number; p99us: number; rssMiB: { remote: number; export: number } | null }

/** The median (the mean of the two middle values for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * One row per (system, workload), in first-seen order, each number the median of that case's runs
 * (each column on its own: the median IOPS and the median p99 may come from different runs).
 */
export function medianRows(runs: readonly Row[]): Row[] {
  const cases = new Map<string, Row[]>();
  for (const r of runs) {
    const key = `${r.system}\0${r.workload}`;
    const list = cases.get(key);
    if (list) list.push(r);
    else cases.set(key, [r]);
  }
  return [...cases.values()].map((rs) => {
    const col = (f: (r: Row) => number): number => median(rs.map(f));
    const rss = rs.map((r) => r.rssMiB).filter((x): x is { remote: number; export: number } => x !== null);
    return {
      system: rs[0]!.system,
      workload: rs[0]!.workload,
      mibps: col((r) => r.mibps),
      iops: col((r) => r.iops),
      p50us: col((r) => r.p50us),
      p99us: col((r) => r.p99us),
      rssMiB: rss.length ? { remote: median(rss.map((x) => x.remote)), export: median(rss.map((x) => x.export)) } : null,
    };
  });
}

/** `--repeat N`: a positive integer (1 when absent). */
export function parseRepeat(args: readonly string[]): number {
  const i = args.indexOf('--repeat');
  if (i < 0) return 1;
  const v = args[i + 1] ?? '';
  if (!/^[1-9]\d*$/.test(v)) throw new Error(`invalid value ${JSON.stringify(v)} for --repeat: expected a positive integer`);
  return Number(v);
}

/**
 * The systems of round `round` (1-based), rotated by one place per round: a system that runs right
 * after a heavy one (or first, on a cold machine) does so in one round only, so position effects
 * spread over every system instead of always penalising the same one.
 */
export function roundOrder<T>(systems: readonly T[], round: number): T[] {
  const k = systems.length === 0 ? 0 : (round - 1) % systems.length;
  return [...systems.slice(k), ...systems.slice(0, k)];
}

/**
 * Per round, `a`'s IOPS over `b`'s on `workload` (runs of one case pair up in the order they ran);
 * the median of those is the paired ratio: each pair ran minutes apart at most, so drift cancels.
 */
export function pairedRatios(runs: readonly Row[], a: string, b: string, workload: string): number[] {
  const of = (s: string): Row[] => runs.filter((r) => r.system === s && r.workload === workload);
  const as = of(a), bs = of(b);
  return as.slice(0, bs.length).map((r, i) => r.iops / bs[i]!.iops);
}
