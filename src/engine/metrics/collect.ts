// What the metrics endpoint exposes, gathered at scrape time from what the registry already shows
// (node show: counters, states, legs) and from the runtimes' request metrics (remote nodes: their
// NBD requests; exports: the requests they serve), plus a few numbers about the engine process.
// Every family is always present (HELP and TYPE even without samples), so a node added or removed
// only adds or removes its series. A node's bytes are what its clients moved (a mirror's: what its
// NBD clients read and wrote, once); what a multi-leg device sent each leg (every leg's copy of a
// write, resync copies) is in the dst_leg_* families, labelled leg too.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Clock, TimerHandle } from '../../util/clock.js';
import { NODE_STATES } from '../../netlink/objects.js';
import { LEG_STATES, type NodeShow, type NodeRuntime } from '../types.js';
import type { Family, Labels } from './exposition.js';
import { LATENCY_OPS, type Rates, type RequestMetrics } from './request-metrics.js';

/** What a runtime measures beyond node show. */
export interface NodeMetricsView {
  /** remote: the NBD side, arrival to reply; export: the requests it serves, arrival to answer */
  requests: RequestMetrics;
  /** per leg (multi-leg nodes): the device's send to done */
  legs: { index: number; metrics: RequestMetrics }[];
  /** NBD clients connected (remote nodes; null for exports) */
  nbdConnections: number | null;
}

export interface MetricsSource {
  metrics(): NodeMetricsView;
}

export function metricsOf(runtime: NodeRuntime): NodeMetricsView | null {
  const m = (runtime as Partial<MetricsSource>).metrics;
  return typeof m === 'function' ? m.call(runtime) : null;
}

export interface NodeSample {
  show: NodeShow;
  metrics: NodeMetricsView | null;
}

export interface EngineSample {
  rssBytes: number;
  /** event-loop delay over the engine's last complete interval (LOOP_INTERVAL_MS), seconds */
  loopDelayP99: number;
  loopDelayMax: number;
  cryptoBusySeconds: number;
  payloadPoolFreeBytes: number;
}

type Kind = 'counter' | 'gauge';

/** The families in a fixed order, filled node by node. */
class Families {
  readonly list: Family[] = [];

  scalar(kind: Kind, name: string, help: string): (labels: Labels, value: number) => void {
    const f: Family = { kind, name, help, samples: [] };
    this.list.push(f);
    return (labels, value) => f.samples.push({ labels, value });
  }

  histogram(name: string, help: string): Extract<Family, { kind: 'histogram' }>['samples'] {
    const f: Extract<Family, { kind: 'histogram' }> = { kind: 'histogram', name, help, samples: [] };
    this.list.push(f);
    return f.samples;
  }
}

/** Requests, errors and latency of one RequestMetrics, under `prefix` (dst_ or dst_leg_). */
function requestFamilies(fs: Families, prefix: string, what: string): (labels: Labels, m: RequestMetrics) => void {
  const requests = fs.scalar('counter', `${prefix}requests_total`, `${what} answered, by op (trim counts TRIM and WRITE_ZEROES)`);
  const errors = fs.scalar('counter', `${prefix}request_errors_total`, `${what} answered with an error, by op and errno`);
  const duration = fs.histogram(`${prefix}request_duration_seconds`, `${what}: time from arrival to answer, by op`);
  return (labels, m) => {
    for (const op of LATENCY_OPS) {
      const l = { ...labels, op };
      const total = m.latency[op].total;
      requests(l, total.count);
      duration.push({ labels: l, histogram: total });
      for (const [errno, n] of m.errors[op]) errors({ ...l, errno }, n);
    }
  };
}

export function collectFamilies(nodes: readonly NodeSample[], engine: EngineSample): Family[] {
  const fs = new Families();
  const nodeState = fs.scalar('gauge', 'dst_node_state', 'the node\'s state: 1 for the state it is in, 0 for the others');
  const readBytes = fs.scalar('counter', 'dst_read_bytes_total', 'bytes read (export: from its disk; remote: by its NBD clients)');
  const writeBytes = fs.scalar('counter', 'dst_write_bytes_total', 'bytes written (export: to its disk; remote: by its NBD clients)');
  const resends = fs.scalar('counter', 'dst_resends_total', 'transactions sent again after the resend timeout');
  const replays = fs.scalar('counter', 'dst_replays_total', 'transactions replayed (remote: after a reconnect; export: answered from the replay cache)');
  const reconnects = fs.scalar('counter', 'dst_reconnects_total', 'connections to the export made again after one was lost');
  const inflight = fs.scalar('gauge', 'dst_inflight_requests', 'requests in flight now');
  const nbdConns = fs.scalar('gauge', 'dst_nbd_connections', 'NBD clients connected to a remote node');
  const nodeRequests = requestFamilies(fs, 'dst_', 'requests (remote: from its NBD clients; export: from its remote nodes)');
  const legState = fs.scalar('gauge', 'dst_leg_state', 'a multi-leg node\'s leg state: 1 for the state it is in, 0 for the others');
  const legRead = fs.scalar('counter', 'dst_leg_read_bytes_total', 'bytes the device read from the leg');
  const legWrite = fs.scalar('counter', 'dst_leg_write_bytes_total', 'bytes the device wrote to the leg (writes and zeroes)');
  const legReconnects = fs.scalar('counter', 'dst_leg_reconnects_total', 'connections to the leg\'s export made again after one was lost');
  const legResends = fs.scalar('counter', 'dst_leg_resends_total', 'the leg\'s transactions sent again after the resend timeout');
  const legReplays = fs.scalar('counter', 'dst_leg_replays_total', 'the leg\'s transactions replayed after a reconnect');
  const legInflight = fs.scalar('gauge', 'dst_leg_inflight_requests', 'the leg\'s transactions in flight now');
  const resyncRemaining = fs.scalar('gauge', 'dst_resync_remaining_bytes', 'bytes of the leg out of sync (still to copy)');
  const legRequests = requestFamilies(fs, 'dst_leg_', 'requests the device sent the leg');

  for (const { show: n, metrics: m } of nodes) {
    const node = { node: n.name };
    for (const s of NODE_STATES) nodeState({ ...node, state: s }, s === n.state ? 1 : 0);
    readBytes(node, n.stats.bytesRead);
    writeBytes(node, n.stats.bytesWritten);
    resends(node, n.stats.resends);
    replays(node, n.stats.replayed);
    reconnects(node, n.stats.reconnects);
    inflight(node, n.stats.inflight);
    if (m !== null) {
      if (m.nbdConnections !== null) nbdConns(node, m.nbdConnections);
      nodeRequests(node, m.requests);
    }
    for (const l of n.legs ?? []) {
      const leg = { ...node, leg: String(l.index) };
      for (const s of LEG_STATES) legState({ ...leg, state: s }, s === l.state ? 1 : 0);
      legRead(leg, l.stats.bytesRead);
      legWrite(leg, l.stats.bytesWritten);
      legReconnects(leg, l.stats.reconnects);
      legResends(leg, l.stats.resends);
      legReplays(leg, l.stats.replayed);
      legInflight(leg, l.stats.inflight);
      resyncRemaining(leg, l.outOfSyncBytes);
      const lm = m?.legs.find((x) => x.index === l.index);
      if (lm) legRequests(leg, lm.metrics);
    }
  }

  fs.scalar('gauge', 'process_resident_memory_bytes', 'resident set size of the engine process')({}, engine.rssBytes);
  fs.scalar('gauge', 'dst_event_loop_delay_p99_seconds', 'the engine\'s event-loop delay over its last complete 10 s, 99th percentile')({}, engine.loopDelayP99);
  fs.scalar('gauge', 'dst_event_loop_delay_max_seconds', 'the engine\'s event-loop delay over its last complete 10 s, maximum')({}, engine.loopDelayMax);
  fs.scalar('counter', 'dst_crypto_pool_busy_seconds_total', 'time the crypto pool\'s worker threads spent sealing and opening frames')({}, engine.cryptoBusySeconds);
  fs.scalar('gauge', 'dst_payload_pool_free_bytes', 'bytes of free payload buffers the engine keeps for reuse')({}, engine.payloadPoolFreeBytes);
  return fs.list;
}

/** The event-loop delay histogram the probe reads (node:perf_hooks' IntervalHistogram, or a fake). */
export interface LoopDelay {
  readonly count: number;
  readonly max: number;
  percentile(p: number): number;
  reset(): void;
  disable(): void;
}

/** The event-loop delay is summarised per interval by the engine's clock, not per scrape: every scraper sees the same figures. */
export const LOOP_INTERVAL_MS = 10_000;

/**
 * The engine-wide numbers. The event-loop delay (sampled every 20 ms while the endpoint runs) is
 * the last complete interval's p99 and maximum; until one is complete, what has been seen so far.
 */
export class EngineProbe {
  private readonly loop: LoopDelay;
  private last: { p99: number; max: number } | null = null;
  private timer: TimerHandle;

  /** `loop`: the histogram to read (default: the process's, enabled here) */
  constructor(private readonly parts: { cryptoBusySeconds: () => number; payloadPoolFreeBytes: () => number; clock: Clock; loop?: LoopDelay }) {
    this.loop = parts.loop ?? enabledLoopDelay();
    this.timer = this.arm();
  }

  private arm(): TimerHandle {
    return this.parts.clock.setTimer(LOOP_INTERVAL_MS, () => {
      this.last = this.delay();
      this.loop.reset();
      this.timer = this.arm();
    });
  }

  private delay(): { p99: number; max: number } {
    const seen = this.loop.count > 0;
    return { p99: seen ? this.loop.percentile(99) / 1e9 : 0, max: seen ? this.loop.max / 1e9 : 0 };
  }

  sample(): EngineSample {
    const d = this.last ?? this.delay();
    return {
      rssBytes: process.memoryUsage.rss(),
      loopDelayP99: d.p99,
      loopDelayMax: d.max,
      cryptoBusySeconds: this.parts.cryptoBusySeconds(),
      payloadPoolFreeBytes: this.parts.payloadPoolFreeBytes(),
    };
  }

  close(): void {
    this.timer.cancel();
    this.loop.disable();
  }
}

function enabledLoopDelay(): LoopDelay {
  const h = monitorEventLoopDelay({ resolution: 20 });
  h.enable();
  return h;
}

/** Every node of the registry as a sample. */
export function nodeSamples(r: { names(): string[]; show(name: string): NodeShow; runtime(name: string): NodeRuntime }): NodeSample[] {
  return r.names().map((name) => ({ show: r.show(name), metrics: metricsOf(r.runtime(name)) }));
}

/** `status`: every node's request rates added up (remote nodes: NBD requests; exports: the requests they serve). */
export function engineRates(reg: { names(): string[]; runtime(name: string): NodeRuntime }): Rates {
  const sum: Rates = { readIops: 0, writeIops: 0, readBytesPerSecond: 0, writeBytesPerSecond: 0 };
  for (const name of reg.names()) {
    const m = metricsOf(reg.runtime(name));
    if (m === null) continue;
    const r = m.requests.rates();
    sum.readIops += r.readIops;
    sum.writeIops += r.writeIops;
    sum.readBytesPerSecond += r.readBytesPerSecond;
    sum.writeBytesPerSecond += r.writeBytesPerSecond;
  }
  return sum;
}
