// One leg: the link from a remote node to one export (DESIGN §8) — its connection, its transaction
// table, its backoff and the checks that keep replayed writes on the same disk (identity, size).
// A single remote node has one leg; a multi-leg device (issue 14) will have one per export.
//
//   submit() ──► TransactionTable ──sendTxn()──► Connection ──TCP──► export
//
// Phases: connecting (no HELLO yet), ready, backoff (an attempt failed or the link was lost; the
// next attempt is armed), failed (final until the next start: identity changed, size shrank, or
// taken-over: the leg's mirror claim was overtaken by a newer session of the mirror).
// Backoff: reconnect-delay × 2^failures, capped at 30 s; failures reset by a successful HELLO.
import { randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import { parseHostPort } from '../../util/parse.js';
import { errnoName, errnoNumber } from '../../util/errors.js';
import { Access, Feature, type Frame, type HelloReply, type MirrorClaim } from '../../protocol/wire.js';
import { emptyStats, type CryptoConfig, type EventFields, type EventName, type NodeContext, type Policy, type Stats } from '../types.js';
import { Connection, type SocketFactory } from './connection.js';
import { ConnState, type ConnCloseInfo } from './conn-state.js';
import type { LegRequest, TxnDone } from './target.js';
import { TransactionTable } from './transactions.js';
import { ZeroFlag, allData } from '../../protocol/thin.js';

const EPERM = errnoNumber('EPERM');

/** Backoff cap (DESIGN §8). */
export const BACKOFF_CAP_MS = 30_000;

/** Delay before the next attempt after `failures` failed ones (0 = first failure): doubling, capped. */
export function backoffDelay(policy: Pick<Policy, 'reconnectDelayMs'>, failures: number): number {
  const base = Math.max(0, policy.reconnectDelayMs);
  return Math.min(BACKOFF_CAP_MS, base * 2 ** Math.min(failures, 30));
}

export type LegPhase = 'connecting' | 'ready' | 'backoff' | 'failed';

/** What a leg reads from, and tells, the node it belongs to. */
export interface LegOptions {
  ctx: NodeContext;
  log: Logger;
  /** "host:port" of the export, read at each attempt */
  remote: () => string;
  /** the export name to ask for ('' = the default) */
  exportName: () => string;
  /** configured size limit (null = the export's) */
  sizeLimit: () => number | null;
  policy: () => Policy;
  /** read at each handshake: `crypto set` applies at the next one */
  crypto: () => CryptoConfig;
  emit: (event: EventName, fields?: EventFields) => void;
  /** the phase (or its reason) moved */
  phaseChanged: () => void;
  /**
   * The first HELLO of this run succeeded: the leg attached its table and stays `connecting`
   * until the node calls becomeReady(conn) (a node announces ready once its NBD endpoint listens).
   */
  firstHello: (conn: Connection, sessionHex: string) => void;
  socketFactory?: SocketFactory;
}

function permsOf(granted: number): 'r' | 'w' | 'rw' | null {
  const r = (granted & Access.READ) !== 0;
  const w = (granted & Access.WRITE) !== 0;
  return r && w ? 'rw' : r ? 'r' : w ? 'w' : null;
}

export class Leg {
  phase: LegPhase = 'connecting';
  reason: string | null = null;
  table: TransactionTable | null = null;
  private conn: Connection | null = null;
  sessionId: Buffer | null = null;

  // learned from the first HELLO_REPLY of this run
  identity: Buffer | null = null;
  /** the export's instance id at the last handshake (a mirror tells a restarted export by it) */
  instance: Buffer | null = null;
  /** the export's Feature bits at the last handshake (0: an export that predates them) */
  features = 0;
  sizeBytes: number | null = null;
  perms: 'r' | 'w' | 'rw' | null = null;
  private exportMaxRequest = 0;
  private reconnects = 0;

  private failures = 0;
  private backoffTimer: TimerHandle | null = null;
  private backoffStartedAt = 0;
  private backoffFailures = 0;
  private running = false;
  /** sent in every HELLO (setClaim) */
  private claim: MirrorClaim | null = null;

  private readonly capacityListeners = new Set<() => void>();

  constructor(private readonly o: LegOptions) {}

  get clock(): Clock {
    return this.o.ctx.clock;
  }

  /**
   * The mirror claim sent in every HELLO from the next one on (null: none); reconnect() presents
   * it at once. While the leg has one, an EPERM from the export means a newer session of the
   * mirror took it over: the leg fails with reason taken-over and does not retry.
   */
  setClaim(claim: MirrorClaim | null): void {
    this.claim = claim === null ? null : { uuid: Buffer.from(claim.uuid), session: claim.session };
  }

  /** Begin a run: a new session, an empty table, the first attempt. */
  start(): void {
    this.running = true;
    this.sessionId = randomBytes(16);
    this.identity = null;
    this.sizeBytes = null;
    this.perms = null;
    this.exportMaxRequest = 0;
    this.reconnects = 0;
    this.failures = 0;
    const table = new TransactionTable({
      clock: this.o.ctx.clock,
      log: this.o.log,
      policy: this.o.policy,
      emit: (event, fields) => this.o.emit(event, fields),
    });
    table.onCapacity(() => this.capacityReturned());
    this.table = table;
    this.setPhase('connecting', null);
    this.attempt();
  }

  /** End the run, first half: no more attempts; the link closes (gracefully unless force). */
  closeLink(force: boolean): void {
    this.running = false;
    this.cancelBackoff();
    const conn = this.conn;
    this.conn = null;
    conn?.close('node stopped', !force);
  }

  /** End the run, second half (after the NBD endpoint closed): the table and what HELLO taught. */
  closeTable(): void {
    this.table?.close();
    this.table = null;
    this.sessionId = null;
    this.sizeBytes = null;
    this.perms = null;
    this.identity = null;
  }

  private setPhase(phase: LegPhase, reason: string | null): void {
    this.phase = phase;
    this.reason = reason;
    this.o.phaseChanged();
  }

  configChanged(): void {
    this.table?.policyChanged();
    this.conn?.policyChanged();
    if (this.backoffTimer) {
      // apply the new reconnect-delay to the backoff already running
      const delay = backoffDelay(this.o.policy(), this.backoffFailures);
      const remaining = Math.max(0, this.backoffStartedAt + delay - this.o.ctx.clock.now());
      this.backoffTimer.cancel();
      this.backoffTimer = this.o.ctx.clock.setTimer(remaining, () => this.onBackoffTimer());
      this.o.log.info(`policy changed: next attempt in ${Math.round(remaining)} ms`, { op: 'backoff' });
    }
  }

  /** Drop the link and handshake again (queued transactions are replayed on the new link). */
  reconnect(): void {
    const conn = this.conn;
    this.conn = null;
    if (conn) {
      const wasReady = conn.state === ConnState.READY;
      conn.close('reconnect requested');
      this.table?.detach();
      if (wasReady) this.o.emit('disconnected', { reason: 'reconnect' });
    }
    this.cancelBackoff();
    if (this.phase === 'ready') this.setPhase('backoff', 'reconnect');
    this.attempt();
  }

  /**
   * Give up on what is in flight (a mirror leg that went behind): those transactions fail with
   * ECANCELED and are never replayed, and the leg reconnects at once with the same session id, so
   * the export fences the old socket and waits for its backend calls before the new one serves.
   */
  abandon(reason: string): void {
    if (!this.running || this.phase === 'failed') return;
    const n = this.table?.failAll('ECANCELED', `leg abandoned (${reason})`) ?? 0;
    this.o.log.warn(`abandoned ${n} request(s) (${reason}); reconnecting`, { op: 'abandon' });
    this.reconnect();
  }

  private attempt(): void {
    this.cancelBackoff();
    const table = this.table;
    if (!this.running || !table || this.phase === 'failed') return;
    let host: string;
    let port: number;
    try {
      ({ host, port } = parseHostPort(this.o.remote(), 'remote address', false));
    } catch (err) {
      this.enterBackoff('link', (err as Error).message);
      return;
    }
    const conn: Connection = new Connection({
      host, port,
      clock: this.o.ctx.clock,
      log: this.o.log,
      policy: this.o.policy,
      exportName: this.o.exportName(),
      sessionId: this.sessionId!,
      mirrorClaim: this.claim,
      outstanding: () => table.outstanding() > 0,
      onReady: (reply) => this.onHello(conn, reply),
      onResponse: (frame) => this.onResponse(conn, frame),
      onClose: (info) => this.onConnClose(conn, info),
      crypto: this.o.crypto,
      cryptoPool: this.o.ctx.cryptoPool,
      ...(this.o.socketFactory ? { socketFactory: this.o.socketFactory } : {}),
    });
    this.conn = conn;
    this.o.log.debug(`connecting to ${host}:${port}`, { op: 'connect' });
    conn.start();
  }

  private onHello(conn: Connection, reply: HelloReply): void {
    if (conn !== this.conn || !this.table) return;
    const perms = permsOf(reply.granted);
    if (perms === null) {
      this.conn = null;
      conn.close('no access granted');
      this.enterBackoff('denied', 'the export granted neither read nor write');
      return;
    }
    if (this.identity) {
      // A reconnect: replayed writes must never land on another disk.
      if (!this.identity.equals(reply.identity)) {
        this.fail('identity-changed',
          `export identity changed from ${this.identity.toString('hex')} to ${reply.identity.toString('hex')}`);
        return;
      }
      if (this.sizeBytes !== null && reply.size < this.sizeBytes) {
        this.fail('size-shrank', `export size shrank from ${this.sizeBytes} to ${reply.size} bytes`);
        return;
      }
    }
    const first = this.identity === null;
    if (first) {
      this.identity = Buffer.from(reply.identity);
      const want = this.o.sizeLimit() ?? reply.size;
      this.sizeBytes = Math.min(want, reply.size);
      if (want > reply.size) {
        this.o.log.warn(`configured size ${want} exceeds the export's ${reply.size} bytes; using ${reply.size}`, { op: 'hello' });
      }
    }
    this.perms = perms;
    this.instance = reply.instance;
    this.features = reply.features;
    this.exportMaxRequest = reply.maxRequest;
    this.failures = 0;
    if (!first) this.reconnects++;
    const sessionHex = this.sessionId!.toString('hex');
    this.o.log.info(`connected: session ${sessionHex}, size ${this.sizeBytes}, permissions ${perms}`, { op: 'hello' });
    if (first) {
      this.table.attach(conn);
      this.o.firstHello(conn, sessionHex);
      return;
    }
    this.ready(sessionHex);
    this.table.attach(conn);
  }

  /** After firstHello: announce ready if that link is still the current one. */
  becomeReady(conn: Connection, sessionHex: string): void {
    if (conn === this.conn && this.phase !== 'failed') this.ready(sessionHex);
  }

  private ready(sessionHex: string): void {
    this.setPhase('ready', null);
    this.o.emit('connected', { sessionId: sessionHex });
  }

  private onResponse(conn: Connection, frame: Frame): void {
    if (conn !== this.conn || !this.table) return;
    if (frame.status === EPERM && this.claim !== null && this.table.get(frame.id)?.place === 'sent') {
      // a newer session of the mirror holds the export: this request completes with its EPERM, the rest with EIO
      this.fail('taken-over', `the export refused ${errnoName(frame.status)} for request ${frame.id}: a newer session of the mirror took it over`, frame.id);
      return;
    }
    const result = this.table.onResponse(frame.id, frame.status, frame.payload);
    if (result === 'bad') conn.fail('link', `bad IO_RESPONSE for id ${frame.id}`, 'EPROTO');
    else if (result === 'not-run') conn.fail('link', `the export is stopping (ESHUTDOWN for id ${frame.id}): reconnecting to replay`, 'ESHUTDOWN');
  }

  private onConnClose(conn: Connection, info: ConnCloseInfo): void {
    if (conn !== this.conn) return; // closed on purpose, already replaced
    this.conn = null;
    const requeued = this.table?.detach() ?? 0;
    const log = this.o.log;
    if (info.wasReady) {
      log.warn(`disconnected: ${info.detail}${requeued ? `; ${requeued} request(s) will be replayed` : ''}`,
        { op: 'link', errno: info.errno });
      this.o.emit('disconnected', { reason: info.reason });
    } else if (info.reason === 'auth-failed' || info.reason === 'suite-mismatch' || info.reason === 'denied') {
      // not a flaky link: the configuration of one side must change; say so loudly (the backoff
      // still doubles, so a wrong key never becomes a retry storm)
      log.error(`connection refused (${info.reason}): ${info.detail}`, { op: 'connect', errno: info.errno });
      if (info.reason !== 'denied') this.o.emit('auth-failed', { message: info.detail });
    } else {
      log.warn(`connection attempt failed: ${info.detail}`, { op: 'connect', errno: info.errno });
    }
    if (!this.running || this.phase === 'failed') return;
    if (info.reason === 'taken-over') {
      this.fail('taken-over', info.detail);
      return;
    }
    this.enterBackoff(info.reason === 'closed' ? 'link' : info.reason, info.detail);
  }

  private enterBackoff(reason: string, detail: string): void {
    const delay = backoffDelay(this.o.policy(), this.failures);
    this.backoffFailures = this.failures;
    this.failures++;
    this.backoffStartedAt = this.o.ctx.clock.now();
    this.cancelBackoff();
    this.backoffTimer = this.o.ctx.clock.setTimer(delay, () => this.onBackoffTimer());
    this.o.log.info(`backoff (${reason}): next attempt in ${delay} ms`, { op: 'backoff', detail });
    this.setPhase('backoff', reason);
  }

  private onBackoffTimer(): void {
    this.backoffTimer = null;
    this.attempt();
  }

  private cancelBackoff(): void {
    this.backoffTimer?.cancel();
    this.backoffTimer = null;
  }

  /**
   * Final until the next start: close the link, fail every queued transaction with EIO; the one
   * whose answer revealed the failure (`answeredId`) completes with EPERM, after the leg is failed.
   */
  fail(reason: string, detail: string, answeredId?: number): void {
    this.o.log.error(`failed (${reason}): ${detail}; failing queued I/O with EIO`, { op: 'hello', errno: 'EIO' });
    this.cancelBackoff();
    const conn = this.conn;
    this.conn = null;
    conn?.close(detail);
    this.table?.detach(); // nothing more goes out on that link
    this.setPhase('failed', reason);
    if (answeredId !== undefined) this.table?.completeId(answeredId, 'EPERM', null, `${reason}: ${detail}`);
    this.table?.failAll('EIO', `${reason}: ${detail}`);
  }

  // ---- the requests ----

  maxRequest(): number {
    const p = this.o.policy().maxRequest;
    return this.exportMaxRequest > 0 ? Math.min(p, this.exportMaxRequest) : p;
  }

  hasCapacity(): boolean {
    return this.table !== null && this.table.hasCapacity();
  }

  onCapacity(listener: () => void): () => void {
    this.capacityListeners.add(listener);
    return () => { this.capacityListeners.delete(listener); };
  }

  /** Run the capacity listeners (a policy change may have made room). */
  capacityReturned(): void {
    for (const l of [...this.capacityListeners]) l();
  }

  /** The export serves DIGEST (as of the last handshake). */
  get digests(): boolean {
    return (this.features & Feature.DIGEST) !== 0;
  }

  /** WRITE_ZEROES with FAST_ZERO is honoured by the export's disk (as of the last handshake). */
  fastZero(): boolean {
    return (this.features & Feature.FAST_ZERO) !== 0;
  }

  /**
   * What the export does not serve is answered here as a file without native file ops would: an
   * export without BLOCK_STATUS is all data; FAST_ZERO to an export that cannot honour it fails at
   * once (ENOTSUP); without zero flags, NO_HOLE holds anyway (that export writes the zeroes).
   */
  submit(req: LegRequest, done: TxnDone): void {
    if (req.op === 'block-status' && (this.features & Feature.BLOCK_STATUS) === 0) {
      queueMicrotask(() => done(null, allData(req.length)));
      return;
    }
    if (req.op === 'write-zeroes' && (req.zeroFlags ?? 0) !== 0) {
      if ((req.zeroFlags! & ZeroFlag.FAST_ZERO) !== 0 && !this.fastZero()) {
        queueMicrotask(() => done('ENOTSUP', null));
        return;
      }
      if ((this.features & Feature.ZERO_FLAGS) === 0) req = { ...req, zeroFlags: 0 };
    }
    this.table!.submit(req, done);
  }

  stats(): Stats {
    const stats: Stats = this.table ? this.table.stats() : emptyStats();
    stats.reconnects = this.reconnects;
    return stats;
  }
}
