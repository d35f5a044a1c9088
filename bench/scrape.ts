// The scrape-cost rows of `npm run bench` (issue 18): system `dst-scraped` is `dst` with the remote
// engine serving /metrics and a separate process scraping it every second while fio runs (fio
// blocks the bench's own event loop, so the scraper cannot live here); `dst-scraped / dst` in the
// ratios is what scraping costs the data path (the goal: within 3 %, i.e. 0.97–1.03).
import { spawn, type ChildProcess } from 'node:child_process';

export const SCRAPED_SYSTEM = 'dst-scraped';

/** The remote engine's extra arguments: metrics on any free loopback port. */
export const METRICS_ARGS = ['--metrics-listen', '127.0.0.1:0'];

/** A process that GETs `url` every second; a failed scrape ends it (exit 2 or 3), which the case's stop reports. */
export function startScraper(url: string): ChildProcess {
  const script = `const u = ${JSON.stringify(url)};
setInterval(() => { fetch(u).then((r) => { if (r.status !== 200) process.exit(3); return r.text(); }).catch(() => process.exit(2)); }, 1000);`;
  return spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
}

/** "randread-4k-qd32 dst-scraped / dst = 0.99" for each workload both ran. */
export function scrapeRatioLines(rows: readonly { system: string; workload: string; iops: number }[]): string[] {
  return rows.filter((r) => r.system === SCRAPED_SYSTEM).flatMap((s) => {
    const d = rows.find((r) => r.system === 'dst' && r.workload === s.workload);
    return d ? [`${s.workload.padEnd(20)} ${SCRAPED_SYSTEM} / dst = ${(s.iops / d.iops).toFixed(3)}`] : [];
  });
}
