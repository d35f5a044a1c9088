// `dst top`'s model and screen, pure: two `node list` answers and the time between them in, one
// row per node (and per leg under it) out — rates from counter deltas, latency from the engine's
// last 10 s — then laid out for a terminal width. No I/O: top.ts fetches and draws.
import type { LegShow, NodeShow, NodeState, LegState } from '../engine/types.js';
import type { LatencySummary } from '../engine/metrics/histogram.js';
import { msText, roughSize, uptimeText } from './render.js';

export interface TopLatency {
  p50Ms: number;
  p99Ms: number;
}

/** One line of `dst top` (a node, or a leg of one); null where the engine does not know the figure. */
export interface TopRow {
  state: NodeState | LegState;
  readIops: number | null;
  writeIops: number | null;
  readBytesPerSecond: number;
  writeBytesPerSecond: number;
  /** the last 10 s; null when no request of the op was answered in it */
  read: TopLatency | null;
  write: TopLatency | null;
  inflight: number;
  /** in the interval */
  resends: number;
  reconnects: number;
  resync: { doneBytes: number; totalBytes: number; etaMs: number | null } | null;
}

export interface TopNode extends TopRow {
  name: string;
  role: NodeShow['role'];
  legs: (TopRow & { index: number; remote: string })[];
}

export interface TopView {
  intervalMs: number;
  nodes: TopNode[];
}

/** a counter's delta per second, to 0.1 */
const perSecond = (d: number, ms: number): number => (ms > 0 ? Math.round(Math.max(0, d) * 10_000 / ms) / 10 : 0);
const lat = (s: LatencySummary | undefined): TopLatency | null => (s && s.count > 0 ? { p50Ms: s.p50Ms, p99Ms: s.p99Ms } : null);

function nodeRow(cur: NodeShow, prev: NodeShow | undefined, ms: number): TopRow {
  const c = cur.stats;
  const p = prev?.stats ?? c; // a node new since the last refresh: no rate yet
  const cl = cur.latency?.sinceStart;
  const pl = prev?.latency?.sinceStart ?? cl;
  return {
    state: cur.state,
    readIops: cl && pl ? perSecond(cl.read.count - pl.read.count, ms) : null,
    writeIops: cl && pl ? perSecond(cl.write.count - pl.write.count, ms) : null,
    readBytesPerSecond: perSecond(c.bytesRead - p.bytesRead, ms),
    writeBytesPerSecond: perSecond(c.bytesWritten - p.bytesWritten, ms),
    read: lat(cur.latency?.recent.read),
    write: lat(cur.latency?.recent.write),
    inflight: c.inflight,
    resends: Math.max(0, c.resends - p.resends),
    reconnects: Math.max(0, c.reconnects - p.reconnects),
    resync: null,
  };
}

function legRow(cur: LegShow, prev: LegShow | undefined, ms: number): TopRow & { index: number; remote: string } {
  const c = cur.stats;
  const p = prev?.stats ?? c;
  return {
    index: cur.index,
    remote: cur.remote,
    state: cur.state,
    readIops: perSecond(c.reads - p.reads, ms),
    writeIops: perSecond(c.writes - p.writes, ms),
    readBytesPerSecond: perSecond(c.bytesRead - p.bytesRead, ms),
    writeBytesPerSecond: perSecond(c.bytesWritten - p.bytesWritten, ms),
    read: lat(cur.latency.recent.read),
    write: lat(cur.latency.recent.write),
    inflight: c.inflight,
    resends: Math.max(0, c.resends - p.resends),
    reconnects: Math.max(0, c.reconnects - p.reconnects),
    resync: cur.resync ? { doneBytes: cur.resync.doneBytes, totalBytes: cur.resync.totalBytes, etaMs: cur.resync.etaMs } : null,
  };
}

const load = (r: TopRow): number => r.readBytesPerSecond + r.writeBytesPerSecond + (r.readIops ?? 0) + (r.writeIops ?? 0);

/** The rows between two answers `ms` apart, busiest node first (then by name). */
export function topView(prev: readonly NodeShow[], cur: readonly NodeShow[], ms: number): TopView {
  const before = new Map(prev.map((n) => [n.name, n]));
  const nodes = cur.map((n): TopNode => {
    const p = before.get(n.name);
    const samePlace = (l: LegShow): LegShow | undefined => p?.legs?.find((x) => x.index === l.index && x.remote === l.remote);
    return { name: n.name, role: n.role, ...nodeRow(n, p, ms), legs: (n.legs ?? []).map((l) => legRow(l, samePlace(l), ms)) };
  });
  nodes.sort((a, b) => load(b) - load(a) || a.name.localeCompare(b.name));
  return { intervalMs: Math.round(ms), nodes };
}

// ---- the screen ----

interface Column {
  head: string;
  /** lower goes first when the terminal is narrow */
  keep: number;
  left?: boolean;
  cell(r: TopRow): string;
}

const num = (v: number | null): string => (v === null ? '-' : v === 0 ? '0' : v < 10 ? v.toFixed(1) : String(Math.round(v)));
const mib = (bps: number): string => (bps / 1024 / 1024).toFixed(bps >= 100 * 1024 * 1024 ? 0 : 1);
const latText = (l: TopLatency | null): string => (l === null ? '-' : `${msText(l.p50Ms)}/${msText(l.p99Ms)}`);

/** "[####......] 40% 1.2G/3G eta 12s" in at most `room` characters: the bar (up to 20) gets what the figures leave. */
export function resyncBar(r: NonNullable<TopRow['resync']>, room: number): string {
  const f = r.totalBytes > 0 ? Math.min(1, r.doneBytes / r.totalBytes) : 1;
  const figures = `${Math.floor(f * 100)}% ${roughSize(r.doneBytes)}/${roughSize(r.totalBytes)} eta ${r.etaMs === null ? '?' : uptimeText(r.etaMs)}`;
  const width = Math.min(20, room - figures.length - 3);
  if (width < 4) return figures;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${figures}`;
}

const COLUMNS: readonly Column[] = [
  { head: 'STATE', keep: 9, left: true, cell: (r) => r.state },
  { head: 'R-IOPS', keep: 8, cell: (r) => num(r.readIops) },
  { head: 'W-IOPS', keep: 8, cell: (r) => num(r.writeIops) },
  { head: 'R-MiB/s', keep: 7, cell: (r) => mib(r.readBytesPerSecond) },
  { head: 'W-MiB/s', keep: 7, cell: (r) => mib(r.writeBytesPerSecond) },
  { head: 'R-LAT ms', keep: 5, cell: (r) => latText(r.read) },
  { head: 'W-LAT ms', keep: 5, cell: (r) => latText(r.write) },
  { head: 'INFL', keep: 4, cell: (r) => String(r.inflight) },
  { head: 'RESEND', keep: 2, cell: (r) => String(r.resends) },
  { head: 'RECONN', keep: 3, cell: (r) => String(r.reconnects) },
];

/** The view as lines at most `width` wide: columns the width cannot hold are left out, least needed first. */
export function topLines(v: TopView, width: number): string[] {
  const rows: { name: string; row: TopRow }[] = [];
  for (const n of v.nodes) {
    rows.push({ name: n.name, row: n });
    for (const l of n.legs) rows.push({ name: ` └ ${l.index} ${l.remote}`, row: l });
  }
  const nameW = Math.max(4, ...rows.map((r) => r.name.length));
  let cols = [...COLUMNS];
  const widthOf = (c: Column): number => Math.max(c.head.length, ...rows.map((r) => c.cell(r.row).length));
  const total = (cs: readonly Column[]): number => nameW + cs.reduce((s, c) => s + 2 + widthOf(c), 0);
  while (cols.length > 1 && total(cols) > width) {
    const least = cols.reduce((a, b) => (b.keep < a.keep ? b : a));
    cols = cols.filter((c) => c !== least);
  }
  const widths = cols.map(widthOf);
  const room = width - total(cols) - 2;
  const withBar = room >= 16; // room for "37% 1G/3G eta 5s" at least
  const line = (name: string, cells: string[], extra: string): string =>
    [name.padEnd(nameW), ...cells.map((c, i) => (cols[i]!.left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))].join('  ') + (extra ? `  ${extra}` : '');
  const out = [line('NAME', cols.map((c) => c.head), withBar ? 'RESYNC' : '')];
  for (const r of rows) {
    const bar = r.row.resync && withBar ? resyncBar(r.row.resync, room) : '';
    out.push(line(r.name, cols.map((c) => c.cell(r.row)), bar));
  }
  return out.map((l) => (l.length > width ? l.slice(0, width) : l));
}
