// The remote node's transaction table (DESIGN §8, the heart).
//
// Every block request becomes a transaction taken from a preallocated pool of `max-inflight`
// slots (≤ 128). Ids are monotonic from 1 per node start and never reused within a session; the
// slot objects are reused, the ids are not.
//
// Each live transaction is in exactly one place:
//   queued — not yet sent on the current connection (new while disconnected, or stranded by a
//            lost connection and waiting to be replayed); kept in id order;
//   sent   — written on the current connection, awaiting its IO_RESPONSE (a Map by id: the
//            export may answer out of order).
// A free slot is in neither.
//
// Every transaction completes EXACTLY ONCE through complete(): a reply, its deadline
// (submittedAt + deadlineMs(policy), whatever the link does), exhausted resends, a node failure
// (identity changed) or node stop (ESHUTDOWN). complete() on a free slot is a logged no-op, and a
// reply for an id that is not in `sent` is logged and ignored (its payload was already framed
// by the decoder, so the stream stays in sync — unlike the original, dst-original §8.6).
//
// Time: ONE timer for the whole table, armed for the earliest deadline (the oldest live
// transaction: ids and submit times grow together). No per-request timers. Liveness of the link
// (PING/PONG) is the connection's business, not the table's.
import type { Clock, TimerHandle } from '../../util/clock.js';
import { DstError, errnoName, errnoNumber } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { DIGEST_SIZE, Flag, zeroFlagsToWire } from '../../protocol/wire.js';
import { checkExtents } from '../../protocol/thin.js';
import { deadlineMs, emptyStats, type EventFields, type EventName, type Policy, type Stats } from '../types.js';
import type { LegOp, LegRequest, TxnDone } from './target.js';

/** Hard cap on the pool (DESIGN §2: max-inflight ≤ 128). */
export const MAX_POOL = 128;
/** The export's answer for a request it never ran because it is stopping. */
const ESHUTDOWN = errnoNumber('ESHUTDOWN');

/** Graceful stop waits this long for in-flight transactions, then fails them with ESHUTDOWN. */
export const STOP_GRACE_MS = 10_000;

export type TxnPlace = 'free' | 'queued' | 'sent';

export interface Txn {
  /** transaction id (0 while the slot is free) */
  id: number;
  op: LegOp;
  offset: number;
  length: number;
  /** write data (exactly `length` bytes); null for other ops */
  payload: Buffer | null;
  /** the request's own wire flags: Flag.FUA, and a WRITE_ZEROES' Flag.NO_HOLE / Flag.FAST_ZERO */
  flags: number;
  /** clock.now() at submit */
  submittedAt: number;
  /** how many times it has been written on a connection (1 = sent once, no resend yet) */
  attempts: number;
  /** the caller's completion; null once completed (slot free) */
  done: TxnDone | null;
  place: TxnPlace;
}

/** Where transactions are sent: the current connection (connection.ts implements it). */
export interface TxnSender {
  /** Write one IO frame. flags: the transaction's own and Flag.REPLAY. ackedBelow: every id below it has completed. */
  sendTxn(txn: Readonly<Txn>, flags: number, ackedBelow: number): void;
}

/**
 * What onResponse made of a reply. 'bad' = protocol violation: the caller drops the connection.
 * 'not-run' = the export answered ESHUTDOWN (it is stopping and never ran the request): the
 * transaction stays sent and the caller drops the connection, so it is replayed on the next one —
 * an export restart is an outage to ride out until the deadline, not an error for NBD.
 */
export type ResponseResult = 'completed' | 'unknown' | 'bad' | 'not-run';

export interface TransactionTableOptions {
  clock: Clock;
  log: Logger;
  /** read at every use, so a policy change applies at once (call policyChanged() after one) */
  policy: () => Policy;
  /** event sink for 'txn-failed' and 'replayed' */
  emit?: (event: EventName, fields: EventFields) => void;
}

function clampInflight(p: Policy): number {
  return Math.max(1, Math.min(MAX_POOL, Math.floor(p.maxInflight)));
}

export class TransactionTable {
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly policy: () => Policy;
  private readonly emit: (event: EventName, fields: EventFields) => void;

  /** every slot ever allocated (grows if max-inflight grows) */
  private readonly slots: Txn[] = [];
  private readonly free: Txn[] = [];
  /** live transactions by id; Map insertion order = id order (ids only grow) */
  private readonly active = new Map<number, Txn>();
  /** not yet sent on the current connection, id order */
  private queued: Txn[] = [];
  /** sent on the current connection, awaiting a reply */
  private readonly sent = new Map<number, Txn>();
  private nextId = 1;
  private sender: TxnSender | null = null;
  /** attach() is walking the queue */
  private replaying = false;

  private deadlineTimer: TimerHandle | null = null;
  private deadlineTimerAt = Infinity;

  private readonly capacityListeners = new Set<() => void>();
  /** set when a caller saw the pool full; cleared when capacity returns and listeners ran */
  private needDrain = false;

  /** true once drain()/close() began: no new transactions */
  private closed = false;
  private drainWaiters: (() => void)[] = [];
  private drainTimer: TimerHandle | null = null;

  private readonly counters = emptyStats();

  constructor(opts: TransactionTableOptions) {
    this.clock = opts.clock;
    this.log = opts.log;
    this.policy = opts.policy;
    this.emit = opts.emit ?? (() => {});
    this.growPool();
  }

  // ---- capacity / backpressure ----

  /** Slots usable now: policy.maxInflight clamped to 1..128. */
  capacity(): number {
    return clampInflight(this.policy());
  }

  /** False when the pool is full (or the table is closed): stop reading the NBD sockets. */
  hasCapacity(): boolean {
    const ok = !this.closed && this.active.size < this.capacity();
    if (!ok) this.needDrain = true;
    return ok;
  }

  /** listener runs when capacity returns after the pool was seen full; returns an unsubscribe function */
  onCapacity(listener: () => void): () => void {
    this.capacityListeners.add(listener);
    return () => { this.capacityListeners.delete(listener); };
  }

  /** Apply a policy change now: grow the pool, re-arm the deadline timer, wake waiters if capacity grew. */
  policyChanged(): void {
    this.growPool();
    this.armDeadline(true);
    this.maybeNotifyCapacity();
  }

  private growPool(): void {
    const want = this.capacity();
    while (this.slots.length < want) {
      const slot: Txn = { id: 0, op: 'read', offset: 0, length: 0, payload: null, flags: 0,
        submittedAt: 0, attempts: 0, done: null, place: 'free' };
      this.slots.push(slot);
      this.free.push(slot);
    }
  }

  // ---- submit ----

  /**
   * Take a slot for `req`; `done` runs exactly once. Sent at once when a connection is attached,
   * else queued. Returns the transaction id. Throws DST_ERR_BUSY when the pool is full and
   * DST_ERR_CLOSED (ESHUTDOWN) once the table is draining or closed.
   */
  submit(req: LegRequest, done: TxnDone): number {
    if (this.closed) throw new DstError('DST_ERR_CLOSED', `${req.op}: node is stopping`, { errno: 'ESHUTDOWN' });
    if (this.active.size >= this.capacity()) {
      this.needDrain = true;
      throw new DstError('DST_ERR_BUSY', `${req.op}: transaction pool full (${this.active.size} in flight)`, { errno: 'EAGAIN' });
    }
    const txn = this.free.pop();
    /* c8 ignore next */
    if (!txn) throw new DstError('DST_ERR_INTERNAL', 'transaction pool: no free slot below capacity');
    txn.id = this.nextId++;
    txn.op = req.op;
    txn.offset = req.offset;
    txn.length = req.length;
    txn.payload = req.op === 'write' ? req.payload : null;
    txn.flags = requestFlags(req);
    txn.submittedAt = this.clock.now();
    txn.attempts = 0;
    txn.done = done;
    txn.place = 'queued';
    this.active.set(txn.id, txn);
    this.counters.inflightPeak = Math.max(this.counters.inflightPeak, this.active.size);
    if (this.active.size >= this.capacity()) this.needDrain = true;
    // An armed timer is never later than this transaction's deadline (it is armed for an older
    // one, or for one that already completed: it then fires early, finds nothing and re-arms).
    if (this.deadlineTimer === null) this.armDeadline(false);
    const id = txn.id;
    if (this.sender && !this.replaying && this.queued.length === 0) {
      // Straight to sent: nothing older is waiting, so id order holds. (During a replay, a
      // completion callback's new submission queues behind the replayed ones.)
      this.sendOne(txn, this.sender, 0);
    } else {
      this.queued.push(txn);
    }
    return id;
  }

  // ---- connection attach / detach ----

  /**
   * A connection is ready: replay every queued transaction in id order. Those sent before get
   * Flag.REPLAY and count as resends; one already resent policy.maxResends times fails with EIO.
   * Emits 'replayed' {count} once when anything was replayed. Returns the number replayed.
   */
  attach(sender: TxnSender): number {
    this.sender = sender;
    const maxResends = this.policy().maxResends;
    let replayed = 0;
    this.replaying = true;
    try {
      while (this.queued.length > 0 && this.sender === sender) {
        const txn = this.queued.shift()!;
        if (txn.attempts === 0) {
          this.sendOne(txn, sender, 0);
          continue;
        }
        if (txn.attempts > maxResends) {
          // already taken out of `queued`: finish without unlinking
          this.finish(txn, 'EIO', null, `gave up after ${txn.attempts - 1} resend(s) (max-resends ${maxResends})`, false);
          continue;
        }
        replayed++;
        this.counters.resends++;
        this.sendOne(txn, sender, Flag.REPLAY);
      }
    } finally {
      this.replaying = false;
    }
    if (replayed > 0) {
      this.counters.replayed += replayed;
      this.log.info(`replayed ${replayed} transaction(s) after reconnect`, { op: 'replay', count: replayed });
      this.emit('replayed', { count: replayed });
    }
    return replayed;
  }

  /** The connection is gone: every sent transaction goes back to queued (id order). Returns how many. */
  detach(): number {
    this.sender = null;
    const n = this.sent.size;
    if (n === 0) return 0;
    for (const txn of this.sent.values()) {
      txn.place = 'queued';
      this.queued.push(txn);
    }
    this.sent.clear();
    this.queued.sort((a, b) => a.id - b.id);
    return n;
  }

  private sendOne(txn: Txn, sender: TxnSender, flags: number): void {
    txn.place = 'sent';
    this.sent.set(txn.id, txn);
    txn.attempts++;
    sender.sendTxn(txn, flags | txn.flags, this.ackedBelow());
  }

  // ---- replies ----

  /**
   * An IO_RESPONSE arrived on the current connection. status = errno number (0 = ok).
   * Unknown id (completed, timed out, never sent here) → logged and ignored.
   * A successful READ whose payload is not `length` bytes, or DIGEST whose payload is not
   * DIGEST_SIZE bytes, or BLOCK_STATUS whose extents do not check (protocol/thin.ts) → 'bad' (caller drops the link; the transaction stays sent and is replayed on
   * the next connection).
   */
  onResponse(id: number, status: number, payload: Buffer): ResponseResult {
    const txn = this.sent.get(id);
    if (!txn) {
      this.log.debug(`ignored response for unknown transaction id ${id} (already completed or timed out)`,
        { op: 'response', id, status });
      return 'unknown';
    }
    if (status === 0 && txn.op === 'read' && payload.length !== txn.length) {
      this.log.warn(`read response for id ${id} carries ${payload.length} bytes, expected ${txn.length}`, { op: 'read', id });
      return 'bad';
    }
    if (status === 0 && txn.op === 'digest' && payload.length !== DIGEST_SIZE) {
      this.log.warn(`digest response for id ${id} carries ${payload.length} bytes, expected ${DIGEST_SIZE}`, { op: 'digest', id });
      return 'bad';
    }
    if (status === 0 && txn.op === 'block-status') {
      try {
        checkExtents(payload, txn.length);
      } catch (err) {
        this.log.warn(`block status response for id ${id}: ${(err as Error).message}`, { op: 'block-status', id });
        return 'bad';
      }
    }
    if (status === ESHUTDOWN) return 'not-run';
    if (status === 0) {
      this.finish(txn, null, txn.op === 'read' || txn.op === 'digest' || txn.op === 'block-status' ? payload : null, null, true);
    } else {
      const errno = errnoName(status);
      this.finish(txn, errno, null, `export answered ${errno}`, true);
    }
    return 'completed';
  }

  // ---- completion: the one path ----

  /**
   * Complete a live transaction: errno null = success (data = read result). Returns false (and
   * does nothing) if the slot is already free. `cause` is logged for failures before the errno is
   * mapped by the endpoint.
   */
  complete(txn: Txn, errno: string | null, data: Buffer | null, cause?: string): boolean {
    if (txn.place === 'free' || txn.done === null || this.active.get(txn.id) !== txn) {
      this.log.debug(`complete() on a finished transaction ignored`, { op: 'complete', id: txn.id });
      return false;
    }
    this.finish(txn, errno, data, cause ?? null, true);
    return true;
  }

  /** Complete by id (a live transaction); false when the id is not live. */
  completeId(id: number, errno: string | null, data: Buffer | null, cause?: string): boolean {
    const txn = this.active.get(id);
    return txn ? this.complete(txn, errno, data, cause) : false;
  }

  /**
   * Unlink, release the slot, count, report, then run the caller's done (after the slot is free, so
   * done may submit again). `unlink` = remove from queued/sent (false when the caller already did).
   */
  private finish(txn: Txn, errno: string | null, data: Buffer | null, cause: string | null, unlink: boolean): void {
    if (unlink) {
      if (txn.place === 'sent') this.sent.delete(txn.id);
      else if (txn.place === 'queued') {
        const i = this.queued.indexOf(txn);
        if (i >= 0) this.queued.splice(i, 1);
      }
    }
    this.active.delete(txn.id);
    const { id, op, offset, length, attempts, submittedAt } = txn;
    const done = txn.done!;
    txn.id = 0;
    txn.payload = null;
    txn.done = null;
    txn.place = 'free';
    this.free.push(txn);

    if (errno === null) {
      this.counters.completed++;
      if (op === 'read') this.counters.bytesRead += length;
      else if (op === 'write') this.counters.bytesWritten += length;
    } else {
      this.counters.failed++;
      this.log.warn(`${op} offset=${offset} length=${length} failed: ${errno}${cause ? ` (${cause})` : ''}`,
        { op, id, errno, attempts, ageMs: Math.round(this.clock.now() - submittedAt) });
      this.emit('txn-failed', { op, offset, length, errno });
    }

    try {
      done(errno, errno === null ? data : null);
    } catch (err) {
      this.log.error(`completion callback of ${op} id ${id} threw: ${(err as Error)?.message ?? String(err)}`, { op, id });
    }

    // The deadline timer is NOT cancelled when the table empties: at queue depth 1 that would
    // cancel and re-create a timer per request. It fires once, finds nothing and stops.
    if (this.active.size === 0) this.resolveDrain();
    this.maybeNotifyCapacity();
  }

  private maybeNotifyCapacity(): void {
    if (!this.needDrain || this.closed || this.active.size >= this.capacity()) return;
    this.needDrain = false;
    for (const l of [...this.capacityListeners]) {
      try {
        l();
      } catch (err) {
        this.log.error(`capacity listener threw: ${(err as Error)?.message ?? String(err)}`);
      }
      if (this.active.size >= this.capacity()) break; // a listener filled the pool again
    }
  }

  /** Fail every live transaction (node failed: EIO; forced stop: ESHUTDOWN). Returns how many. */
  failAll(errno: string, cause: string): number {
    const all = [...this.active.values()];
    for (const txn of all) if (this.active.get(txn.id) === txn) this.finish(txn, errno, null, cause, true);
    return all.length;
  }

  // ---- deadline: one timer for the table ----

  private oldest(): Txn | undefined {
    return this.active.values().next().value;
  }

  /** Arm the single timer for the oldest live transaction's deadline (re-arm if `force` or earlier). */
  private armDeadline(force: boolean): void {
    const oldest = this.oldest();
    if (!oldest) {
      this.cancelDeadline();
      return;
    }
    const at = oldest.submittedAt + deadlineMs(this.policy());
    // An armed timer that fires early is harmless (onDeadline re-arms); one that fires late is not.
    if (this.deadlineTimer && this.deadlineTimerAt <= at && !force) return;
    if (this.deadlineTimer && this.deadlineTimerAt === at) return;
    this.cancelDeadline();
    this.deadlineTimerAt = at;
    // whole ms, at least 1: the timer can never spin at the same instant
    this.deadlineTimer = this.clock.setTimer(Math.max(1, Math.ceil(at - this.clock.now())), () => this.onDeadline());
  }

  private cancelDeadline(): void {
    this.deadlineTimer?.cancel();
    this.deadlineTimer = null;
    this.deadlineTimerAt = Infinity;
  }

  private onDeadline(): void {
    this.deadlineTimer = null;
    this.deadlineTimerAt = Infinity;
    const now = this.clock.now();
    const limit = deadlineMs(this.policy());
    const expired: Txn[] = [];
    for (const txn of this.active.values()) {
      if (txn.submittedAt + limit <= now) expired.push(txn); // same expression as armDeadline()
      else break; // id order = submit order
    }
    for (const txn of expired) {
      if (this.active.get(txn.id) !== txn) continue;
      const where = txn.place === 'sent' ? 'awaiting the export' : 'waiting for a connection';
      this.finish(txn, 'ETIMEDOUT', null,
        `deadline of ${limit} ms passed ${where} after ${txn.attempts} send(s)`, true);
    }
    this.armDeadline(false);
  }

  // ---- stop ----

  /**
   * Stop taking transactions; resolve once every live one completed. After graceMs the rest fail
   * with ESHUTDOWN (graceMs ≤ 0: at once — forced stop).
   */
  drain(graceMs: number = STOP_GRACE_MS): Promise<void> {
    this.closed = true;
    if (this.active.size === 0) return Promise.resolve();
    const p = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    if (graceMs <= 0) {
      this.failAll('ESHUTDOWN', 'node stopped (forced)');
    } else if (!this.drainTimer) {
      this.drainTimer = this.clock.setTimer(graceMs, () => {
        this.drainTimer = null;
        this.failAll('ESHUTDOWN', `node stopped: still in flight after ${graceMs} ms`);
      });
    }
    return p;
  }

  private resolveDrain(): void {
    if (this.drainWaiters.length === 0) return;
    this.drainTimer?.cancel();
    this.drainTimer = null;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  /** Fail anything left with ESHUTDOWN and release timers. Idempotent. */
  close(): void {
    this.closed = true;
    this.sender = null;
    if (this.active.size > 0) this.failAll('ESHUTDOWN', 'node stopped');
    this.cancelDeadline();
    this.drainTimer?.cancel();
    this.drainTimer = null;
    this.resolveDrain();
    this.capacityListeners.clear();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ---- introspection ----

  /** Smallest id not yet completed: every id below it has completed. */
  ackedBelow(): number {
    const oldest = this.oldest();
    return oldest ? oldest.id : this.nextId;
  }

  /** Transactions sent on the current connection and awaiting replies (liveness: "work outstanding"). */
  outstanding(): number {
    return this.sent.size;
  }

  /** Live transactions (queued + sent). */
  get size(): number {
    return this.active.size;
  }

  /** A live transaction by id (valid only until it completes: slots are reused). */
  get(id: number): Readonly<Txn> | undefined {
    return this.active.get(id);
  }

  queuedIds(): number[] {
    return this.queued.map((t) => t.id);
  }

  sentIds(): number[] {
    return [...this.sent.keys()].sort((a, b) => a - b);
  }

  /** Slots allocated so far (the pool). */
  poolSize(): number {
    return this.slots.length;
  }

  stats(): Stats {
    const oldest = this.oldest();
    return {
      ...this.counters,
      inflight: this.active.size,
      oldestInflightMs: oldest ? Math.max(0, Math.round(this.clock.now() - oldest.submittedAt)) : null,
    };
  }
}

/** A request's wire flags (the export checks which op may carry which). */
function requestFlags(req: LegRequest): number {
  return (req.fua ? Flag.FUA : 0) | zeroFlagsToWire(req.zeroFlags ?? 0);
}
