// Fencing + dedup state (DESIGN §8): sessions keyed by the client's 16-byte session id, each with
// the record of executed transactions (id → status) so a REPLAY of something that already ran is
// answered from the record instead of running again. Only data-changing ops (and FLUSH) are
// recorded: a replayed READ is simply run again.

/** Default bound per session: 4 × 128 in flight × 64 connections. */
export const DEFAULT_DEDUP_LIMIT = 4 * 128 * 64;

export class DedupTable {
  // Insertion order ≈ completion order ≈ id order; pruning walks from the front.
  private readonly records = new Map<number, number>();
  /** records dropped because the table was full */
  dropped = 0;

  constructor(readonly limit = DEFAULT_DEDUP_LIMIT,
    private readonly onOverflow: (dropped: number) => void = () => {}) {}

  get size(): number {
    return this.records.size;
  }

  /** The recorded status of transaction `id`, or undefined if it was not executed (or forgotten). */
  lookup(id: number): number | undefined {
    return this.records.get(id);
  }

  record(id: number, status: number): void {
    this.records.delete(id); // re-insert at the end
    this.records.set(id, status);
    while (this.records.size > this.limit) {
      const oldest = this.records.keys().next().value as number;
      this.records.delete(oldest);
      this.dropped++;
      // log the first overflow and then every 4096th, not every record
      if (this.dropped === 1 || this.dropped % 4096 === 0) this.onOverflow(this.dropped);
    }
  }

  /**
   * The client says every id below `ackedBelow` completed: those records can go. Walks from the
   * oldest and stops at the first id ≥ ackedBelow, so the cost is what is removed (plus one);
   * a record stuck behind a later one goes on a later call or by the bound.
   */
  prune(ackedBelow: number): number {
    let removed = 0;
    for (const id of this.records.keys()) {
      if (id >= ackedBelow) break;
      this.records.delete(id);
      removed++;
    }
    return removed;
  }
}

/** One client session (a remote node's `start`), across its connections. */
export class Session<C = unknown> {
  readonly hex: string;
  /** connections of this session still open or with backend calls in flight */
  readonly connections = new Set<C>();
  readonly dedup: DedupTable;
  lastUsed: number;
  /** HELLOs accepted for this session */
  hellos = 0;

  constructor(readonly id: Buffer, now: number, dedupLimit: number, onOverflow: (s: Session<C>, dropped: number) => void) {
    this.hex = id.toString('hex');
    this.lastUsed = now;
    this.dedup = new DedupTable(dedupLimit, (dropped) => onOverflow(this, dropped));
  }
}

export interface SessionTableOptions {
  /** forget a session with no connection after this long (ms) */
  idleMs?: number;
  /** keep at most this many sessions; the longest idle go first */
  maxSessions?: number;
  dedupLimit?: number;
  onOverflow?: (session: Session<unknown>, dropped: number) => void;
}

export class SessionTable<C = unknown> {
  private readonly sessions = new Map<string, Session<C>>();
  readonly idleMs: number;
  readonly maxSessions: number;
  private readonly dedupLimit: number;
  private readonly onOverflow: (session: Session<C>, dropped: number) => void;

  constructor(opts: SessionTableOptions = {}) {
    this.idleMs = opts.idleMs ?? 60 * 60 * 1000;
    this.maxSessions = opts.maxSessions ?? 256;
    this.dedupLimit = opts.dedupLimit ?? DEFAULT_DEDUP_LIMIT;
    this.onOverflow = (opts.onOverflow ?? (() => {})) as (session: Session<C>, dropped: number) => void;
  }

  get size(): number {
    return this.sessions.size;
  }

  get(id: Buffer): Session<C> | undefined {
    return this.sessions.get(id.toString('hex'));
  }

  /** The session for `id`, created if unknown. Sweeps idle sessions first. */
  obtain(id: Buffer, now: number): { session: Session<C>; known: boolean } {
    this.sweep(now);
    const hex = id.toString('hex');
    let session = this.sessions.get(hex);
    const known = session !== undefined;
    if (!session) {
      session = new Session<C>(Buffer.from(id), now, this.dedupLimit, this.onOverflow);
      this.sessions.set(hex, session);
      this.evictIfFull(session);
    }
    session.lastUsed = now;
    return { session, known };
  }

  /** Forget sessions with no connection idle for idleMs. */
  sweep(now: number): number {
    let n = 0;
    for (const [hex, s] of this.sessions) {
      if (s.connections.size === 0 && now - s.lastUsed >= this.idleMs) {
        this.sessions.delete(hex);
        n++;
      }
    }
    return n;
  }

  private evictIfFull(keep: Session<C>): void {
    while (this.sessions.size > this.maxSessions) {
      let victim: Session<C> | null = null;
      for (const s of this.sessions.values()) {
        if (s === keep || s.connections.size > 0) continue;
        if (!victim || s.lastUsed < victim.lastUsed) victim = s;
      }
      if (!victim) return; // all busy: the bound on connections bounds this too
      this.sessions.delete(victim.hex);
    }
  }
}
