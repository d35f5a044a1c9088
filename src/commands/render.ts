// Text rendering only (no I/O): aligned tables and readable blocks. --json never comes here.
import type { ChalkInstance } from 'chalk';
import { formatDuration, formatLegSpec, formatSize } from '../util/parse.js';
import { POLICY_TABLE, policyText } from '../engine/policy.js';
import type { AclEntry, CryptoShow, EventRecord, LegShow, NodeShow, Policy, StatusShow, VerifyShow } from '../engine/types.js';
import { LATENCY_OPS, type LatencyShow, type OpLatency, type Rates } from '../engine/metrics/request-metrics.js';

/** Columns padded to the widest cell; the header in bold. Colour never affects alignment. */
export function table(chalk: ChalkInstance, header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[], style: (s: string) => string): string =>
    cells.map((c, i) => (i === cells.length - 1 ? style(c) : style(c.padEnd(widths[i]!)))).join('  ').trimEnd();
  return [line(header, chalk.bold), ...rows.map((r) => line(r, (s) => s))].join('\n');
}

/** "1G (1073741824 bytes)", "-" when unknown. */
export function sizeText(bytes: number | null): string {
  if (bytes === null) return '-';
  const short = formatSize(bytes);
  return short === String(bytes) ? `${bytes} bytes` : `${short} (${bytes} bytes)`;
}

/** "1.5M", "512K", "900": a size read at a glance (one decimal), where formatSize gives exact bytes. */
export function roughSize(bytes: number): string {
  for (const [unit, mult] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (bytes >= mult) return `${Math.round((bytes / mult) * 10) / 10}${unit}`;
  }
  return String(bytes);
}

/** "2h3m4s", "850ms" */
export function uptimeText(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s %= 86400;
  const h = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  return [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : '', s || (!d && !h && !m) ? `${s}s` : ''].join('');
}

export function stateText(chalk: ChalkInstance, state: string): string {
  switch (state) {
    case 'listening': case 'ready': return chalk.green(state);
    case 'failed': return chalk.red(state);
    case 'backoff': case 'connecting': case 'stopping': return chalk.yellow(state);
    default: return state;
  }
}

function where(n: NodeShow): string {
  if (n.role === 'export') return n.listen ?? '-';
  if (n.legs) return `${n.layout} of ${n.legs.length}`;
  return n.remote ?? '-';
}

/** A multi-leg node's condition at a glance, worst first: split-brain, degraded, resyncing (none when healthy). */
export function conditions(n: NodeShow): string[] {
  return [
    ...(n.splitBrain ? ['split-brain'] : []),
    ...(n.degraded ? ['degraded'] : []),
    ...(n.legs?.some((l) => l.state === 'resyncing') ? ['resyncing'] : []),
  ];
}

/** " (leg, degraded)": the reason (`label`led) and the conditions after a state, "" when there are none (a condition that is the reason once). */
function notes(reason: string | null, n: NodeShow, label = ''): string {
  const all = [...(reason ? [label + reason] : []), ...conditions(n).filter((c) => c !== reason)];
  return all.length ? ` (${all.join(', ')})` : '';
}

/** "ready", "ready (degraded, resyncing)", "backoff (leg)", "ready (split-brain, degraded)" */
function stateWithReason(n: NodeShow): string {
  return n.state + notes(n.reason, n);
}

/** "resync 1.5M/4M (37%), 2M/s, eta 2s": what is left comes from the resync's own rate. */
function resyncText(r: NonNullable<LegShow['resync']>): string {
  const pct = r.totalBytes > 0 ? Math.floor((r.doneBytes * 100) / r.totalBytes) : 100;
  return `resync ${roughSize(r.doneBytes)}/${roughSize(r.totalBytes)} (${pct}%), ${roughSize(r.bytesPerSecond)}/s (paced at ${roughSize(r.rate)}/s), eta ${r.etaMs !== null ? uptimeText(r.etaMs) : 'unknown'}`;
}

/** One leg: its state (and why), and, for a mirror, what it misses (always, so 0 is said) and its resync. */
function legLine(l: LegShow, mirror: boolean): string {
  const why = l.reason ? ` (${l.reason})` : '';
  const behind = mirror ? `, out of sync ${roughSize(l.outOfSyncBytes)}` : '';
  const sync = l.resync ? `, ${resyncText(l.resync)}` : '';
  const gen = l.generation ? `, generation ${l.generation}` : '';
  const st = l.stats;
  return `${l.index}: ${formatLegSpec(l)} ${l.state}${why}${behind}${sync}${gen}; reads ${st.reads}, writes ${st.writes}, resynced ${formatSize(st.resyncedBytes)}, failed ${st.failed}, in flight ${st.inflight}, resends ${st.resends}, reconnects ${st.reconnects}`;
}

/** "0.13", "51.2", "1024": a latency in ms with about three significant digits. */
export function msText(ms: number): string {
  return ms >= 100 ? String(Math.round(ms)) : String(Number(ms.toPrecision(3)));
}

/** "read 0.13/2.5/3.02 (1200), write -, ...": p50/p99/max in ms per op and how many; - when none. */
export function opLatencyText(l: OpLatency): string {
  return LATENCY_OPS.map((op) => {
    const s = l[op];
    return s.count === 0 ? `${op} -` : `${op} ${msText(s.p50Ms)}/${msText(s.p99Ms)}/${msText(s.maxMs)} (${s.count})`;
  }).join(', ');
}

/** "last 10 s    read …" and "since start  read …", each after `prefix`. */
function latencyLines(l: LatencyShow, prefix: string): string[] {
  return [`${prefix}last 10 s    ${opLatencyText(l.recent)}`, `${prefix}since start  ${opLatencyText(l.sinceStart)}`];
}

/** mismatching regions node show's text names (JSON has all of mismatchList) */
const SHOWN_REGIONS = 4;

/** "; at 3328K (256K, leg 0, 1), at 7M (256K, leg 1) and 3 more": where a pass found mismatches (exact sizes). */
function mismatchText(v: VerifyShow): string {
  const named = v.mismatchList.slice(0, SHOWN_REGIONS).map((m) => `at ${formatSize(m.offset)} (${formatSize(m.length)}, leg ${m.legs.join(', ')})`);
  const more = v.mismatches - named.length;
  return named.length ? `; ${named.join(', ')}${more > 0 ? ` and ${more} more` : ''}` : '';
}

/** The running or last verify pass: "running 1.5M/6M, 2M/s, eta 2s, 1 mismatching, 0 repaired so far; at 1M (256K, leg 0, 1)". */
function verifyText(v: VerifyShow | null): string {
  if (!v) return 'no pass yet (dst node verify, or policy verify-interval)';
  const counts = `${v.mismatches} mismatching, ${v.repaired} repaired`;
  const pace = `${roughSize(v.bytesPerSecond)}/s, eta ${v.etaMs !== null ? uptimeText(v.etaMs) : 'unknown'}`;
  return (v.running ? `running ${roughSize(v.doneBytes)}/${roughSize(v.totalBytes)}, ${pace}, ${counts} so far`
    : `last pass ${v.doneBytes === v.totalBytes ? 'complete' : `stopped at ${roughSize(v.doneBytes)}/${roughSize(v.totalBytes)}`}: ${counts}`) + mismatchText(v);
}

/** The loud line of a split brain: which legs, and the generation each one holds. */
function splitBrainText(sb: NonNullable<NodeShow['splitBrain']>): string {
  const legs = sb.legs.map((leg, k) => `leg ${leg} (generation ${sb.generations[k] ?? '?'})`).join(', ');
  return `SPLIT BRAIN: ${legs} were written apart; no leg is known to be right`;
}

/** `node list`: one row per node. */
export function nodeTable(chalk: ChalkInstance, nodes: readonly NodeShow[]): string {
  if (nodes.length === 0) return 'no nodes (add one with: dst node add NAME --disk PATH --listen ADDR:PORT, or --remote HOST:PORT)';
  return table(chalk, ['NAME', 'ROLE', 'STATE', 'SIZE', 'ADDRESS', 'LOCAL'], nodes.map((n) => [
    n.name, n.role, stateWithReason(n), n.size === null ? '-' : formatSize(n.size), where(n),
    n.role === 'export' ? (n.disk ?? '-') : (n.attachment?.device ?? n.nbd?.socket ?? '-'),
  ]));
}

/** One line after add/start/stop/set/reconnect: "vol: export, listening on 0.0.0.0:10825". */
export function nodeLine(chalk: ChalkInstance, n: NodeShow): string {
  const place = n.role === 'export'
    ? (n.listen ? `${n.state === 'listening' ? 'on' : 'for'} ${n.listen}` : '')
    : n.legs ? `${n.layout} of ${n.legs.map((l) => l.remote).join(', ')}` : (n.remote ? `to ${n.remote}` : '');
  return `${chalk.bold(n.name)}: ${n.role} ${stateText(chalk, n.state)}${notes(n.reason, n)}${place ? ' ' + place : ''}`;
}

/** `node set`: every policy key on one line, in table order. */
export function policyLine(p: Policy): string {
  return POLICY_TABLE.map((k) => policyText(k, p)).join(', ');
}

/** `node show`: the policy keys two to a line, the deadline they make after the first pair. */
function policyLines(p: Policy & { deadlineMs: number }): string[] {
  const lines: string[] = [];
  for (let i = 0; i < POLICY_TABLE.length; i += 2) {
    lines.push(POLICY_TABLE.slice(i, i + 2).map((k) => policyText(k, p)).join(', '));
  }
  lines[0] += ` (deadline ${formatDuration(p.deadlineMs)})`;
  return lines;
}

function aclLines(acl: readonly AclEntry[]): string[] {
  return acl.map((e) => `${e.addr} ${e.perm}${e.keyFile ? ` key-file=${e.keyFile}` : ''}`);
}

/** `node show`: a readable block. */
export function nodeBlock(chalk: ChalkInstance, n: NodeShow): string {
  const rows: [string, string | string[]][] = [];
  rows.push(['role', n.role]);
  rows.push(['state', stateText(chalk, n.state) + notes(n.reason, n, 'reason: ')]);
  if (n.splitBrain) rows.push(['', chalk.red.bold(splitBrainText(n.splitBrain))]);
  rows.push(['size', sizeText(n.size)]);
  if (n.role === 'export') {
    rows.push(['disk', (n.disk ?? '-') + (n.readonly ? ' (read-only)' : '')]);
    if (n.backend) rows.push(['backend', `nbd ${n.backend.state}, reconnects ${n.backend.reconnects}, reissued ${n.backend.reissued}, flags ${n.backend.flags}`]);
    rows.push(['listen', n.listen ?? '-']);
    rows.push(['acl', n.acl && n.acl.length ? aclLines(n.acl) : 'empty: nobody may connect (dst security add ' + n.name + ' --addr IP --perm rw)']);
  } else {
    if (n.legs) {
      const unit = n.layout === 'stripe' && n.chunk !== null ? `, chunk ${formatSize(n.chunk)}` : n.layout === 'mirror' && n.region !== null ? `, region ${formatSize(n.region)}` : '';
      rows.push(['layout', `${n.layout}${unit}`]);
      rows.push(['legs', n.legs.flatMap((l) => [legLine(l, n.layout === 'mirror'), ...latencyLines(l.latency, '   latency p50/p99/max ms, ')])]);
      if (n.layout === 'mirror') rows.push(['verify', verifyText(n.verify)]);
    } else {
      rows.push(['remote', (n.remote ?? '-') + (n.export ? ` (export "${n.export}")` : '')]);
    }
    rows.push(['permissions', n.permissions ?? '-']);
    rows.push(['session', n.sessionId ?? '-']);
    rows.push(['nbd', n.nbd ? [n.nbd.socket, n.nbd.uri, ...(n.nbd.listen ? [`tcp ${n.nbd.listen}`] : [])] : 'not serving yet']);
    rows.push(['attachment', n.attachment ? `${n.attachment.device} (${n.attachment.method}, ${n.attachment.state})` : 'none']);
  }
  // p50/p99/max: a remote node's from NBD request to reply (what a reader of the device waits), an export's from request to answer
  if (n.latency) rows.push(['latency', ['p50/p99/max ms (requests)', ...latencyLines(n.latency, '')]]);
  rows.push(['autostart', n.autostart ? 'yes' : 'no']);
  rows.push(['crypto', cryptoSummary(n.crypto)]);
  rows.push(['policy', policyLines(n.policy)]);
  const s = n.stats;
  rows.push(['stats', [
    `inflight ${s.inflight} (peak ${s.inflightPeak}${s.oldestInflightMs !== null ? `, oldest ${formatDuration(s.oldestInflightMs)}` : ''}), completed ${s.completed}, failed ${s.failed}`,
    `resends ${s.resends}, replayed ${s.replayed}, reconnects ${s.reconnects}`,
    `read ${formatSize(s.bytesRead)}, written ${formatSize(s.bytesWritten)}`,
  ]]);
  return `${chalk.bold(n.name)}\n${block(rows)}`;
}

function block(rows: readonly [string, string | string[]][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  const out: string[] = [];
  for (const [k, v] of rows) {
    const vals = Array.isArray(v) ? v : [v];
    vals.forEach((val, i) => out.push(`  ${(i === 0 ? k : '').padEnd(w)}  ${val}`));
  }
  return out.join('\n');
}

export function cryptoSummary(c: CryptoShow): string {
  const keys = [c.cipherKeyFile ? `cipher-key-file ${c.cipherKeyFile}` : '', c.hashKeyFile ? `hash-key-file ${c.hashKeyFile}` : '']
    .filter(Boolean).join(', ');
  return `${c.suite} (threads ${c.threads}${keys ? ', ' + keys : ''})`;
}

/** `crypto show`: a readable block. */
export function cryptoBlock(c: CryptoShow): string {
  return block([
    ['suite', c.suite],
    ['cipher', c.cipher],
    ['hash', c.hash],
    ['cipher-key-file', c.cipherKeyFile ?? '-'],
    ['hash-key-file', c.hashKeyFile ?? '-'],
    ['threads', String(c.threads)],
  ]);
}

/** `security list`: ADDRESS PERM KEY-FILE. */
export function aclTable(chalk: ChalkInstance, name: string, acl: readonly AclEntry[]): string {
  if (acl.length === 0) return `${name}: ACL empty: nobody may connect (add one with: dst security add ${name} --addr IP[/PREFIX] --perm rw)`;
  return table(chalk, ['ADDRESS', 'PERM', 'KEY-FILE'], acl.map((e) => [e.addr, e.perm, e.keyFile ?? '-']));
}

/** "read 120 IOPS 4.5M/s, write 0 IOPS 0/s" */
export function ratesText(r: Rates): string {
  const one = (iops: number, bps: number): string => `${iops < 10 ? iops.toFixed(1) : Math.round(iops)} IOPS ${roughSize(Math.round(bps))}/s`;
  return `read ${one(r.readIops, r.readBytesPerSecond)}, write ${one(r.writeIops, r.writeBytesPerSecond)}`;
}

/** `status`: a short summary plus one row per node. */
export function statusText(chalk: ChalkInstance, s: StatusShow): string {
  const exports = s.nodes.filter((n) => n.role === 'export').length;
  const head = [
    `${chalk.bold('dst engine')} ${s.version}, pid ${s.pid}, up ${uptimeText(s.uptimeMs)}`,
    `socket ${s.socket}`,
    `state dir ${s.stateDir}`,
    `crypto threads ${s.cryptoThreads}, cipher ${s.cipherImpl}`,
    `disk lock ${s.diskLock}`,
    `file ops ${s.fileOps}`,
    `memory ${s.heap}`,
    `socket reads ${s.socketReads}`,
    `config ${s.config.file ?? '(none)'}, ${s.config.autosave ? 'autosave' : 'no autosave'}${s.config.unsaved ? `, ${chalk.yellow('unsaved changes')}` : ''}`,
    `metrics ${s.metrics ? `http://${s.metrics}/metrics` : 'off (dst engine --metrics-listen ADDR:PORT)'}`,
    `rates (last 10 s) ${ratesText(s.rates)}`,
    `nodes ${s.nodes.length} (${exports} export, ${s.nodes.length - exports} remote)`,
  ].join('\n');
  if (s.nodes.length === 0) return head;
  return head + '\n\n' + table(chalk, ['NAME', 'ROLE', 'STATE', 'ATTACHMENT'], s.nodes.map((n) => [
    n.name, n.role, n.state, n.attachment ? `${n.attachment.device} (${n.attachment.method}, ${n.attachment.state})` : '-',
  ]));
}

const EVENT_BASE = new Set(['seq', 'ts', 'node', 'event']);

/** `events`: "2024-05-01T10:00:00.000Z vol state-changed from=connecting to=ready reason=-" */
export function eventLine(chalk: ChalkInstance, ev: EventRecord): string {
  const fields = Object.entries(ev)
    .filter(([k, v]) => !EVENT_BASE.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${v === null ? '-' : typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : String(v)}`);
  const ts = Number.isFinite(ev.ts) ? new Date(ev.ts).toISOString() : String(ev.ts);
  const name = ev.event === 'txn-failed' || ev.event === 'auth-failed' || ev.event === 'acl-denied' || ev.event === 'attach-broken' || ev.event === 'events-lost'
    ? chalk.red(ev.event) : ev.event;
  return [chalk.dim(ts), ev.node ?? '-', name, ...fields].join(' ');
}
