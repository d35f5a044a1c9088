// The scrape-cost rows of `npm run bench` (issue 18): system `dst-scraped` is `dst` with the remote
// engine serving /metrics; on the same engines, fio runs twice per round, once while a separate
// process scrapes /metrics every second (row `dst-scraped`) and once without (row
// `dst-unscraped`), the order swapped every round; `dst-scraped / dst-unscraped` is what scraping
// costs the data path (the goal: within 3 %, i.e. 0.97–1.03). fio blocks the bench's own event
// loop, so the scraper cannot live here.
//
// Why the same engines: on this 2-vCPU VM two fresh pairs of engines differ by up to ±10 % on the
// same workload (where their processes land, what the JIT did), which drowns a 3 % question; one
// pair measured both ways does not. The lines also give the median of the per-round ratios and
// what a scrape takes: request to last byte bounds how long it held the engine's event loop.
//
// The scraper runs at the lowest CPU priority: a real scraper (Prometheus) runs on another machine,
// and here its own CPU would be taken from fio and the engines, which is not what scraping costs the
// engine. It still scrapes every second; its requests still wait for the engine's event loop.
import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import { median, pairedRatios, type Row } from './stats.js';

export const SCRAPED_SYSTEM = 'dst-scraped';
export const UNSCRAPED = 'dst-unscraped';

/** The remote engine's extra arguments: metrics on any free loopback port. */
export const METRICS_ARGS = ['--metrics-listen', '127.0.0.1:0'];

/** What the scraper saw; printed as one JSON line when it is told to stop. */
export interface ScrapeReport { scrapes: number; medianMs: number; maxMs: number; bytes: number }

export interface Scraper {
  readonly child: ChildProcess;
  /** true once its first scrape is done (it loads its HTTP client, the engine compiles the collection: not measured) */
  readonly ready: Promise<boolean>;
  /** SIGTERM it and read its report (null when it died early: a scrape failed) */
  stop(): Promise<ScrapeReport | null>;
}

const scrapes: ScrapeReport[] = [];

/** A process that GETs `url` once, says `ready`, then GETs it every second; a failed scrape ends it (exit 2 or 3). */
function startScraper(url: string): Scraper {
  const script = `const u = ${JSON.stringify(url)}; const ms = []; let bytes = 0;
const scrape = () => { const t = performance.now(); return fetch(u).then((r) => { if (r.status !== 200) process.exit(3); return r.text(); })
  .then((b) => { bytes = Buffer.byteLength(b); return performance.now() - t; }); };
scrape().then(() => { process.stdout.write('ready\\n');
  setInterval(() => { scrape().then((d) => ms.push(d), () => process.exit(2)); }, 1000); }, () => process.exit(2));
process.on('SIGTERM', () => { const s = [...ms].sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ scrapes: s.length, medianMs: s[s.length >> 1] ?? 0, maxMs: s[s.length - 1] ?? 0, bytes }) + '\\n'); process.exit(0); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  if (child.pid !== undefined) setPriority(child.pid, 19);
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<boolean>((resolve) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.startsWith('ready\n')) resolve(true);
    });
    void exited.then(() => resolve(false));
  });
  return {
    child,
    ready,
    async stop() {
      if (child.exitCode !== null) return null;
      child.kill('SIGTERM');
      await exited;
      try {
        const report = JSON.parse(out.slice('ready\n'.length)) as ScrapeReport;
        scrapes.push(report);
        return report;
      } catch {
        return null;
      }
    },
  };
}

type Measured = Omit<Row, 'system' | 'rssMiB'>;

/**
 * One round on one pair of engines: an unmeasured fio run (the first on fresh engines is slower:
 * the JIT, the pools), then fio without and with the scraper, in the order of the round (odd rounds
 * without first). `track` learns the scraper's process (the bench kills what it tracks
 * when it fails).
 */
export async function scrapeRound(url: string, round: number, run: () => Measured, rss: () => Row['rssMiB'],
  track: (c: ChildProcess) => void, note: (line: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  run();
  for (const on of round % 2 === 1 ? [false, true] : [true, false]) {
    const scraper = on ? startScraper(url) : null;
    if (scraper) {
      track(scraper.child);
      if (!await scraper.ready) throw new Error(`the scraper's first GET ${url} failed`);
    }
    try {
      rows.push({ system: on ? SCRAPED_SYSTEM : UNSCRAPED, ...run(), rssMiB: rss() });
    } finally {
      const report = await scraper?.stop();
      if (report === null) note(`the scraper stopped early (exit ${scraper!.child.exitCode}): a scrape failed`);
      else if (report) note(`${report.scrapes} scrapes, median ${report.medianMs.toFixed(1)} ms, max ${report.maxMs.toFixed(1)} ms`);
    }
  }
  return rows;
}

function pct(r: number): string {
  return `${((r - 1) * 100).toFixed(1)} %`;
}

/** For each workload both ran: the ratio of the medians, the paired ratios, and what a scrape took. */
export function scrapeRatioLines(rows: readonly Row[], runs: readonly Row[]): string[] {
  const lines = rows.filter((r) => r.system === SCRAPED_SYSTEM).flatMap((s) => {
    const d = rows.find((r) => r.system === UNSCRAPED && r.workload === s.workload);
    if (!d) return [];
    const paired = pairedRatios(runs, SCRAPED_SYSTEM, UNSCRAPED, s.workload);
    return [`${s.workload.padEnd(20)} ${SCRAPED_SYSTEM} / ${UNSCRAPED} = ${(s.iops / d.iops).toFixed(3)} (${pct(s.iops / d.iops)}); `
      + `per round ${paired.map((p) => p.toFixed(3)).join(' ')}, median ${median(paired).toFixed(3)}`];
  });
  if (scrapes.length > 0) {
    lines.push(`${SCRAPED_SYSTEM}: ${scrapes.reduce((n, s) => n + s.scrapes, 0)} scrapes of ${Math.round(median(scrapes.map((s) => s.bytes)) / 1024)} KiB, `
      + `median ${median(scrapes.map((s) => s.medianMs)).toFixed(1)} ms each, max ${Math.max(...scrapes.map((s) => s.maxMs)).toFixed(1)} ms `
      + '(one a second: at most that share of the engine\'s event loop)');
  }
  return lines;
}
