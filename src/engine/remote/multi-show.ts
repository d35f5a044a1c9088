// What `node show` says of a remote node's endpoint, a multi-leg node's legs and its summed stats
// (pure: from the legs, their ports and the device as they are now).
import type { Device } from '../layout/device.js';
import type { LegPort } from '../layout/leg-port.js';
import { emptyStats, type EventFields, type LegShow, type LegState, type RemoteConfig, type Stats } from '../types.js';
import { formatHostPort } from '../../util/parse.js';
import type { NodeShow } from '../types.js';
import type { Leg } from './leg.js';
import type { NbdEndpoint } from './nbd-endpoint.js';
import { emptyLatencyShow } from '../metrics/request-metrics.js';

/** Where the node serves NBD (null: not yet). */
export function endpointShow(ep: NbdEndpoint | null): NodeShow['nbd'] {
  if (!ep || ep.socketPath === null) return null;
  return { socket: ep.socketPath, uri: ep.uri, listen: ep.tcpAddress ? formatHostPort(ep.tcpAddress) : null };
}

/** Each leg's show: link, state, what the device knows of it, its counters. */
export function legShows(legs: readonly Leg[], cfg: RemoteConfig, ports: readonly LegPort[], device: Device | null,
  stateOf: (i: number) => LegState, legStats: readonly Stats[]): LegShow[] {
  // while `node leg add/del` swaps the legs, the config may already name the new ones
  return legs.slice(0, cfg.legs.length).map((l, i): LegShow => {
    const leg = cfg.legs[i]!;
    const sync = device?.legSync(i) ?? { outOfSyncBytes: 0, resync: null, resyncedBytes: 0, comparedBytes: 0, generation: null };
    const c = ports[i]?.counters;
    const state = stateOf(i);
    const t = legStats[i]!;
    return {
      index: i,
      remote: leg.remote,
      export: leg.export,
      state,
      reason: legReasonOf(device, l, i, state),
      size: l.sizeBytes,
      identity: l.identity ? l.identity.toString('hex') : null,
      outOfSyncBytes: sync.outOfSyncBytes,
      generation: sync.generation,
      resync: sync.resync,
      latency: ports[i]?.metrics.show() ?? emptyLatencyShow(),
      stats: {
        reads: c?.reads ?? 0, writes: c?.writes ?? 0, bytesRead: c?.bytesRead ?? 0, bytesWritten: c?.bytesWritten ?? 0,
        resyncedBytes: sync.resyncedBytes, comparedBytes: sync.comparedBytes, failed: c?.failed ?? 0, reconnects: t.reconnects,
        resends: t.resends, replayed: t.replayed, inflight: t.inflight,
      },
    };
  });
}

/**
 * A multi-leg node's stats: the legs' transactions added up, but its bytes are what its NBD clients
 * read and wrote (`nbd`): a mirror writes each byte to every leg and resyncs, which the legs count.
 * In flight counts device requests.
 */
export function sumStats(all: Stats[], inflight: number, nbd: { readonly bytesRead: number; readonly bytesWritten: number }): Stats {
  const s = emptyStats();
  for (const x of all) {
    s.inflightPeak = Math.max(s.inflightPeak, x.inflightPeak);
    s.completed += x.completed;
    s.resends += x.resends;
    s.replayed += x.replayed;
    s.failed += x.failed;
    s.reconnects += x.reconnects;
    if (x.oldestInflightMs !== null) s.oldestInflightMs = Math.max(s.oldestInflightMs ?? 0, x.oldestInflightMs);
  }
  s.inflight = inflight;
  s.bytesRead = nbd.bytesRead;
  s.bytesWritten = nbd.bytesWritten;
  return s;
}

/** The index of another of `legs` that is the same export as `leg` (by identity), or -1. */
export function sameExportAs(legs: readonly Leg[], leg: Leg): number {
  return legs.findIndex((l) => l !== leg && l.identity !== null && leg.identity !== null && l.identity.equals(leg.identity));
}

/** A leg's state: the device's word once it exists. */
export function legStateOf(device: Device | null, leg: Leg, i: number): LegState {
  if (device) return device.legState(i);
  return leg.phase === 'failed' ? 'failed' : 'connecting';
}

/** Why a leg is in its state (the device's word once it exists); null when in sync. */
function legReasonOf(device: Device | null, leg: Leg, i: number, state: LegState): string | null {
  if (state === 'in-sync') return null;
  return device ? device.legReason(i) : leg.reason;
}

/** Report (leg-state) every leg whose state moved since `reported`, which is updated; a mirror's with the leg's generation and what it misses. */
export function reportLegStates(legs: readonly Leg[], reported: LegState[], stateOf: (i: number) => LegState, device: Device | null,
  emit: (f: EventFields) => void): void {
  for (let i = 0; i < legs.length; i++) {
    const to = stateOf(i);
    const from = reported[i]!;
    if (to === from) continue;
    reported[i] = to;
    const reason = legReasonOf(device, legs[i]!, i, to);
    const sync = device?.lineage ? device.legSync(i) : null;
    emit({ leg: i, from, to, reason, ...(sync ? { generation: sync.generation, outOfSyncBytes: sync.outOfSyncBytes } : {}) });
  }
}

/** What a device over these legs may do: it writes to every leg it maps to, so only what every leg lets it. */
export function permissionsOf(legs: readonly Leg[]): 'r' | 'w' | 'rw' {
  const perms = legs.map((l) => l.perms).filter((p) => p !== null);
  if (perms.length === 0) return 'r';
  const r = perms.every((p) => p !== 'w');
  const w = perms.every((p) => p !== 'r');
  return r && w ? 'rw' : w ? 'w' : 'r';
}
