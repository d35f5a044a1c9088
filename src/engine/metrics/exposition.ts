// The Prometheus text exposition format (version 0.0.4), written by hand: a few dozen lines for
// counters, gauges and histograms, where a client library would bring its own registry, timers
// and global state to a process that already keeps every number (the registry's counters, the
// latency histograms). Pure: metric families in, text out.
import { BUCKETS, edgeMs, type LatencyHistogram } from './histogram.js';

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  labels: Labels;
  value: number;
}

export interface HistogramSample {
  labels: Labels;
  histogram: LatencyHistogram;
}

export type Family =
  | { kind: 'counter' | 'gauge'; name: string; help: string; samples: Sample[] }
  /** a latency histogram, exposed in seconds */
  | { kind: 'histogram'; name: string; help: string; samples: HistogramSample[] };

/** Upper bounds exposed (seconds): every second bucket edge from 24 µs to about 100 s, then +Inf. */
const EXPOSED: readonly number[] = Array.from({ length: BUCKETS }, (_, b) => b).filter((b) => b >= 17 && b % 2 === 0);

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** The families as one exposition (families without samples keep their HELP and TYPE lines). */
export function exposition(families: readonly Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.kind}`);
    if (f.kind !== 'histogram') {
      for (const s of f.samples) out.push(`${f.name}${labelText(s.labels)} ${num(s.value)}`);
      continue;
    }
    for (const s of f.samples) {
      const h = s.histogram;
      let cumulative = 0;
      let b = 0;
      for (const edge of EXPOSED) {
        for (; b <= edge; b++) cumulative += h.counts[b]!;
        out.push(`${f.name}_bucket${labelText(s.labels, ['le', num(edgeMs(edge) / 1000)])} ${cumulative}`);
      }
      out.push(`${f.name}_bucket${labelText(s.labels, ['le', '+Inf'])} ${h.count}`);
      out.push(`${f.name}_sum${labelText(s.labels)} ${num(h.sumMs / 1000)}`);
      out.push(`${f.name}_count${labelText(s.labels)} ${h.count}`);
    }
  }
  return out.join('\n') + '\n';
}
