// What the metrics endpoint exposes, gathered at scrape time from what the registry already shows
// (node show: counters, states, legs) and from the runtimes' request histograms, plus a few numbers
// about the engine process. Every family is always present (HELP and TYPE even without samples), so
// a node added or removed only adds or removes its series. Series of one leg are in dst_leg_*
// families: a sum by node over dst_read_bytes_total never counts a mirror's bytes twice.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { NODE_STATES } from '../../netlink/objects.js';
import { LEG_STATES, type NodeShow, type NodeRuntime } from '../types.js';
import type { Family, Labels } from './exposition.js';
import { LATENCY_OPS, type Rates, type RequestMetrics } from './request-metrics.js';

/** What a runtime measures beyond node show (remote nodes). */
export interface NodeMetricsView {
  /** the NBD side: arrival to reply */
  requests: RequestMetrics;
  /** per leg (multi-leg nodes): the device's send to done */
  legs: { index: number; metrics: RequestMetrics }[];
  nbdConnections: number;
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
  /** event-loop delay since the previous scrape, seconds */
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
  const readBytes = fs.scalar('counter', 'dst_read_bytes_total', 'bytes read (export: from its disk; remote: from its export)');
  const writeBytes = fs.scalar('counter', 'dst_write_bytes_total', 'bytes written (export: to its disk; remote: to its export)');
  const resends = fs.scalar('counter', 'dst_resends_total', 'transactions sent again after the resend timeout');
  const replays = fs.scalar('counter', 'dst_replays_total', 'transactions replayed (remote: after a reconnect; export: answered from the replay cache)');
  const reconnects = fs.scalar('counter', 'dst_reconnects_total', 'connections to the export made again after one was lost');
  const inflight = fs.scalar('gauge', 'dst_inflight_requests', 'requests in flight now');
  const nbdConns = fs.scalar('gauge', 'dst_nbd_connections', 'NBD clients connected to a remote node');
  const nodeRequests = requestFamilies(fs, 'dst_', 'NBD requests');
  const legState = fs.scalar('gauge', 'dst_leg_state', 'a multi-leg node\'s leg state: 1 for the state it is in, 0 for the others');
  const legRead = fs.scalar('counter', 'dst_leg_read_bytes_total', 'bytes the device read from the leg');
  const legWrite = fs.scalar('counter', 'dst_leg_write_bytes_total', 'bytes the device wrote to the leg (writes and zeroes)');
  const legReconnects = fs.scalar('counter', 'dst_leg_reconnects_total', 'connections to the leg\'s export made again after one was lost');
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
      nbdConns(node, m.nbdConnections);
      nodeRequests(node, m.requests);
    }
    for (const l of n.legs ?? []) {
      const leg = { ...node, leg: String(l.index) };
      for (const s of LEG_STATES) legState({ ...leg, state: s }, s === l.state ? 1 : 0);
      legRead(leg, l.stats.bytesRead);
      legWrite(leg, l.stats.bytesWritten);
      legReconnects(leg, l.stats.reconnects);
      resyncRemaining(leg, l.outOfSyncBytes);
      const lm = m?.legs.find((x) => x.index === l.index);
      if (lm) legRequests(leg, lm.metrics);
    }
  }

  fs.scalar('gauge', 'process_resident_memory_bytes', 'resident set size of the engine process')({}, engine.rssBytes);
  fs.scalar('gauge', 'dst_event_loop_delay_p99_seconds', 'the engine\'s event-loop delay since the previous scrape, 99th percentile')({}, engine.loopDelayP99);
  fs.scalar('gauge', 'dst_event_loop_delay_max_seconds', 'the engine\'s event-loop delay since the previous scrape, maximum')({}, engine.loopDelayMax);
  fs.scalar('counter', 'dst_crypto_pool_busy_seconds_total', 'time the crypto pool\'s worker threads spent sealing and opening frames')({}, engine.cryptoBusySeconds);
  fs.scalar('gauge', 'dst_payload_pool_free_bytes', 'bytes of free payload buffers the engine keeps for reuse')({}, engine.payloadPoolFreeBytes);
  return fs.list;
}

/** The engine-wide numbers; the event-loop delay is sampled while the endpoint runs (20 ms resolution). */
export class EngineProbe {
  private readonly loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });

  constructor(private readonly parts: { cryptoBusySeconds: () => number; payloadPoolFreeBytes: () => number }) {
    this.loop.enable();
  }

  sample(): EngineSample {
    const count = this.loop.count;
    const s: EngineSample = {
      rssBytes: process.memoryUsage.rss(),
      loopDelayP99: count > 0 ? this.loop.percentile(99) / 1e9 : 0,
      loopDelayMax: count > 0 ? this.loop.max / 1e9 : 0,
      cryptoBusySeconds: this.parts.cryptoBusySeconds(),
      payloadPoolFreeBytes: this.parts.payloadPoolFreeBytes(),
    };
    this.loop.reset();
    return s;
  }

  close(): void {
    this.loop.disable();
  }
}

/** Every node of the registry as a sample. */
export function nodeSamples(r: { names(): string[]; show(name: string): NodeShow; runtime(name: string): NodeRuntime }): NodeSample[] {
  return r.names().map((name) => ({ show: r.show(name), metrics: metricsOf(r.runtime(name)) }));
}

/** `status`: every remote node's NBD rates added up. */
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
