// Scraping an engine's /metrics (its address from `dst status --json`) and reading samples back
// from the text exposition.
import type { Engine } from './engine.js';

export async function metricsUrl(e: Engine): Promise<string> {
  const s = await e.status();
  if (s.metrics === null) throw new Error('the engine serves no metrics (start it with --metrics-listen)');
  return `http://${s.metrics}/metrics`;
}

export async function scrape(e: Engine): Promise<string> {
  const res = await fetch(await metricsUrl(e), { signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  return res.text();
}

/** The value of the sample `name{labels}` (labels in any order, all of them given), or null when absent. */
export function sample(text: string, name: string, labels: Record<string, string>): number | null {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? '').split(/,(?=[a-zA-Z_]+=")/).filter(Boolean).sort().join(',');
    if (got === want) return Number(m[3]);
  }
  return null;
}

/** The histogram's p50 as Prometheus computes a bucket bound: the smallest `le` holding half the samples. */
export function histogramP50(text: string, name: string, labels: Record<string, string>): number {
  const count = sample(text, `${name}_count`, labels)!;
  const bounds: number[] = [];
  const re = new RegExp(`^${name}_bucket\\{.*le="([^"]+)"\\} (\\S+)$`);
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m || !want.every((w) => line.includes(w))) continue;
    if (Number(m[2]) >= count / 2) bounds.push(m[1] === '+Inf' ? Infinity : Number(m[1]));
  }
  return Math.min(...bounds);
}
