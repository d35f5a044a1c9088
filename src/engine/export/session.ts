// The session layer of an export node (DESIGN §8 "fencing + dedup"): once its handshake is done a
// connection joins its client's session (admission); a known session's older connections are
// fenced first and their backend calls awaited; a REPLAY that already ran in the session is
// answered from its record, not run again. The table itself is dedup.ts; sockets are connection.ts.
import type { Clock } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import { errnoNumber } from '../../util/errors.js';
import { opAnswersWithData, type Frame } from '../../protocol/wire.js';
import { SessionTable, type Session } from './dedup.js';

const ESHUTDOWN = errnoNumber('ESHUTDOWN');

/** What the session layer needs of a connection. */
export interface SessionMember {
  /** "ip:port" of the peer, for the fence reason */
  readonly label: string;
  /** backend calls issued on this connection and not finished */
  readonly inflightCalls: number;
  /** resolves once no backend call issued on this connection is in flight */
  drained(): Promise<void>;
  /** destroy the socket without parsing another byte; in-flight calls still finish */
  fence(reason: string): void;
}

export class SessionLayer<C extends SessionMember> {
  private readonly table: SessionTable<C>;

  /** fencing false (DST_TEST_NO_FENCING=1): no fencing, no waiting, no dedup */
  constructor(readonly fencing: boolean, log: Logger) {
    this.table = new SessionTable<C>({
      onOverflow: (s, dropped) => log.warn('dedup table full: dropping the oldest records', {
        op: 'dedup', session: s.hex, dropped,
      }),
    });
  }

  /** Sessions known (with or without a connection). */
  get size(): number {
    return this.table.size;
  }

  /**
   * Join `conn` to session `id`; fencing: a known session's old connections are destroyed and their
   * backend calls awaited, then `wanted()` says whether the connection still wants in. `joined`
   * runs before any wait, so the connection can leave the session if it closes meanwhile, and a
   * third HELLO of the same session fences this one too. Resolves whether the session was known
   * (a reconnect), or null if no longer wanted.
   */
  async admit(conn: C, id: Buffer, clock: Clock, log: Logger, joined: (s: Session<C>) => void,
    wanted: () => boolean): Promise<boolean | null> {
    const { session, known } = this.table.obtain(id, clock.now());
    const others = [...session.connections].filter((c) => c !== conn);
    joined(session);
    session.connections.add(conn);
    if (this.fencing && others.length > 0) {
      for (const old of others) old.fence(`fenced by a new connection of the same session from ${conn.label}`);
      const busy = others.filter((c) => c.inflightCalls > 0);
      if (busy.length > 0) {
        log.info('waiting for the old connection\'s backend calls', {
          op: 'fence', session: session.hex, calls: busy.reduce((n, c) => n + c.inflightCalls, 0),
        });
        await Promise.all(busy.map((c) => c.drained()));
      }
      if (!wanted()) return null;
    }
    session.hellos++;
    session.lastUsed = clock.now();
    return known;
  }

  /**
   * The recorded status of a REPLAY that already ran in `session` (answer it with that, do not run
   * it), else undefined; records below the frame's ackedBelow are dropped. A replayed READ or
   * DIGEST runs (it changes nothing).
   */
  recorded(session: Session<C> | null, frame: Frame, replay: boolean): number | undefined {
    if (!this.fencing || !session) return undefined;
    const dedup = session.dedup;
    if (replay && !opAnswersWithData(frame.op)) {
      const status = dedup.lookup(frame.id);
      if (status !== undefined) return status;
    }
    dedup.prune(frame.ackedBelow);
    return undefined;
  }

  /**
   * Record a finished call, before the drain waiters run: a fenced session's successor must see
   * it. ESHUTDOWN means the call never ran (node stopping, hold cancelled): a replay must run it.
   */
  record(session: Session<C> | null, frame: Frame, status: number): void {
    if (!opAnswersWithData(frame.op) && this.fencing && session && status !== ESHUTDOWN) session.dedup.record(frame.id, status);
  }

  /** A closed connection with no call in flight leaves its session. */
  leave(session: Session<C>, conn: C, now: number): void {
    session.connections.delete(conn);
    session.lastUsed = now;
  }
}
