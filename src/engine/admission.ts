// Admission at accept time (issue 11): before a TCP peer costs a connection slot or a timer, its
// address is checked against per-address caps, and what is logged about refused peers is
// rate-limited per address. Shared by the export listener (which also checks its ACL first) and the
// NBD endpoint's optional TCP listener. Pure bookkeeping: the callers own the sockets.
import type { Clock } from '../util/clock.js';

/** Per-address connection caps (the `max-handshakes-per-addr` / `max-conns-per-addr` policy). */
export interface AddrCaps {
  /** connections from one address still in the handshake (no HELLO/options done yet) */
  maxHandshakesPerAddr: number;
  /** connections from one address in all */
  maxConnsPerAddr: number;
}

/** What the caps need to know of an open connection. */
export interface AdmittedPeer {
  /** the peer address, IPv4-mapped normalised */
  readonly addr: string;
  /** still in the handshake */
  readonly handshaking: boolean;
}

/**
 * Why one more connection from `addr` would exceed a cap (naming the cap), or null. Counting by
 * walking the open connections keeps no second table to go stale; there are at most 64 of them.
 */
export function addrCapExceeded(open: Iterable<AdmittedPeer>, addr: string, caps: AddrCaps): string | null {
  let all = 0;
  let handshaking = 0;
  for (const c of open) {
    if (c.addr !== addr) continue;
    all++;
    if (c.handshaking) handshaking++;
  }
  if (all >= caps.maxConnsPerAddr) return `${addr} already has ${all} connections (max-conns-per-addr ${caps.maxConnsPerAddr})`;
  if (handshaking >= caps.maxHandshakesPerAddr) {
    return `${addr} already has ${handshaking} connections in the handshake (max-handshakes-per-addr ${caps.maxHandshakesPerAddr})`;
  }
  return null;
}

/** At most one report per address per this long. */
export const REPORT_INTERVAL_MS = 10_000;
/** Addresses remembered by a limiter; beyond this the stalest are forgotten (a flood of sources cannot grow it). */
export const REPORT_TABLE_MAX = 1024;

/**
 * Per-key rate limit for log lines and events about refused peers: at most one per key per
 * `intervalMs`, and the one that passes carries how many were suppressed since the last one.
 */
export class ReportLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly clock: Clock, private readonly intervalMs = REPORT_INTERVAL_MS,
    private readonly maxKeys = REPORT_TABLE_MAX) {}

  /** null: stay quiet; else report now, with the count suppressed since the last report. */
  take(key: string): { suppressed: number } | null {
    const now = this.clock.now();
    const seen = this.last.get(key);
    if (seen !== undefined && now - seen.at < this.intervalMs) {
      seen.suppressed++;
      return null;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.last.delete(key); // re-inserted last: Map order is then oldest report first
    if (this.last.size >= this.maxKeys) this.evict(now);
    this.last.set(key, { at: now, suppressed: 0 });
    return { suppressed };
  }

  /** Keys remembered (tests: the table stays bounded). */
  get size(): number {
    return this.last.size;
  }

  private evict(now: number): void {
    for (const [key, v] of this.last) {
      if (this.last.size < this.maxKeys && now - v.at < this.intervalMs) return;
      this.last.delete(key); // expired, or the oldest while still full
    }
  }
}
