// The scrape-cost rows of `npm run bench` (issue 18): system `dst-scraped` is `dst` with the remote
// engine serving /metrics and a separate process scraping it every second while fio runs (fio
// blocks the bench's own event loop, so the scraper cannot live here); `dst-scraped / dst` in the
// ratios is what scraping costs the data path (the goal: within 3 %, i.e. 0.97–1.03).
//
// On a 2-vCPU VM that fio and two engines saturate, one run of a case moves by ±5 % against the
// next, so besides the ratio of the medians the lines give the median of the per-round ratios (a
// pair ran back to back) and what a scrape takes: the time from request to the last byte is an
// upper bound on how long it held the engine's event loop.
import { spawn, type ChildProcess } from 'node:child_process';
import { median, pairedRatios, type Row } from './stats.js';

export const SCRAPED_SYSTEM = 'dst-scraped';

/** The remote engine's extra arguments: metrics on any free loopback port. */
export const METRICS_ARGS = ['--metrics-listen', '127.0.0.1:0'];

/** What the scraper saw; printed as one JSON line when it is told to stop. */
export interface ScrapeReport { scrapes: number; medianMs: number; maxMs: number; bytes: number }

export interface Scraper {
  readonly child: ChildProcess;
  /** SIGTERM it and read its report (null when it died early: a scrape failed) */
  stop(): Promise<ScrapeReport | null>;
}

const scrapes: ScrapeReport[] = [];

/** A process that GETs `url` every second; a failed scrape ends it (exit 2 or 3). */
export function startScraper(url: string): Scraper {
  const script = `const u = ${JSON.stringify(url)}; const ms = []; let bytes = 0;
setInterval(() => { const t = performance.now(); fetch(u).then((r) => { if (r.status !== 200) process.exit(3); return r.text(); })
  .then((b) => { ms.push(performance.now() - t); bytes = Buffer.byteLength(b); }).catch(() => process.exit(2)); }, 1000);
process.on('SIGTERM', () => { const s = [...ms].sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ scrapes: s.length, medianMs: s[s.length >> 1] ?? 0, maxMs: s[s.length - 1] ?? 0, bytes }) + '\\n'); process.exit(0); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    async stop() {
      if (child.exitCode !== null) return null;
      child.kill('SIGTERM');
      await exited;
      try {
        const report = JSON.parse(out) as ScrapeReport;
        scrapes.push(report);
        return report;
      } catch {
        return null;
      }
    },
  };
}

function pct(r: number): string {
  return `${((r - 1) * 100).toFixed(1)} %`;
}

/** For each workload both ran: the ratio of the medians, the paired ratios, and what a scrape took. */
export function scrapeRatioLines(rows: readonly Row[], runs: readonly Row[]): string[] {
  const lines = rows.filter((r) => r.system === SCRAPED_SYSTEM).flatMap((s) => {
    const d = rows.find((r) => r.system === 'dst' && r.workload === s.workload);
    if (!d) return [];
    const paired = pairedRatios(runs, SCRAPED_SYSTEM, 'dst', s.workload);
    return [`${s.workload.padEnd(20)} ${SCRAPED_SYSTEM} / dst = ${(s.iops / d.iops).toFixed(3)} (${pct(s.iops / d.iops)}); `
      + `per round ${paired.map((p) => p.toFixed(3)).join(' ')}, median ${median(paired).toFixed(3)}`];
  });
  if (scrapes.length > 0) {
    lines.push(`${SCRAPED_SYSTEM}: ${scrapes.reduce((n, s) => n + s.scrapes, 0)} scrapes of ${Math.round(median(scrapes.map((s) => s.bytes)) / 1024)} KiB, `
      + `median ${median(scrapes.map((s) => s.medianMs)).toFixed(1)} ms each, max ${Math.max(...scrapes.map((s) => s.maxMs)).toFixed(1)} ms `
      + '(one a second: at most that share of a second of the engine\'s event loop)');
  }
  return lines;
}
