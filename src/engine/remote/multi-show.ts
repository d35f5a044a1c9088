// What `node show` says of a multi-leg node's legs and its summed stats (pure: from the legs, their
// ports and the device as they are now).
import type { Device } from '../layout/device.js';
import type { LegPort } from '../layout/leg-port.js';
import { emptyStats, type LegShow, type LegState, type RemoteConfig, type Stats } from '../types.js';
import type { Leg } from './leg.js';

/** Each leg's show: link, state, what the device knows of it, its counters. */
export function legShows(legs: readonly Leg[], cfg: RemoteConfig, ports: readonly LegPort[], device: Device | null,
  stateOf: (i: number) => LegState, legStats: readonly Stats[]): LegShow[] {
  return legs.map((l, i): LegShow => {
    const leg = cfg.legs[i]!;
    const sync = device?.legSync(i) ?? { outOfSyncBytes: 0, resync: null, resyncedBytes: 0, comparedBytes: 0, generation: null };
    const c = ports[i]?.counters;
    return {
      index: i,
      remote: leg.remote,
      export: leg.export,
      state: stateOf(i),
      size: l.sizeBytes,
      identity: l.identity ? l.identity.toString('hex') : null,
      outOfSyncBytes: sync.outOfSyncBytes,
      generation: sync.generation,
      resync: sync.resync,
      stats: {
        reads: c?.reads ?? 0, writes: c?.writes ?? 0, bytesRead: c?.bytesRead ?? 0, bytesWritten: c?.bytesWritten ?? 0,
        resyncedBytes: sync.resyncedBytes, comparedBytes: sync.comparedBytes, failed: c?.failed ?? 0, reconnects: legStats[i]!.reconnects,
      },
    };
  });
}

/** A multi-leg node's stats: the legs' transactions added up; in flight counts device requests. */
export function sumStats(all: Stats[], inflight: number): Stats {
  const s = emptyStats();
  for (const x of all) {
    s.inflightPeak = Math.max(s.inflightPeak, x.inflightPeak);
    s.completed += x.completed;
    s.resends += x.resends;
    s.replayed += x.replayed;
    s.failed += x.failed;
    s.reconnects += x.reconnects;
    s.bytesRead += x.bytesRead;
    s.bytesWritten += x.bytesWritten;
    if (x.oldestInflightMs !== null) s.oldestInflightMs = Math.max(s.oldestInflightMs ?? 0, x.oldestInflightMs);
  }
  s.inflight = inflight;
  return s;
}
