// A remote node: connects to an export over the DST wire protocol and serves it locally over NBD
// (DESIGN §4, §7, §8). It owns the pieces and the reconnect policy:
//
//   NBD endpoint ──submit()──► TransactionTable ──sendTxn()──► Connection ──TCP──► export
//
// States (what show() and state-changed report):
//   configured  not started (or stopped)
//   connecting  started; the first HELLO has not succeeded yet and no attempt has failed
//   ready       connected: HELLO done, transactions flowing, NBD socket serving
//   backoff     an attempt failed or the link was lost; the next attempt is armed (reason: link,
//               denied, suite-mismatch, auth-failed, reconnect). Attempts made while in backoff
//               keep this state until one succeeds. Queued transactions wait (their deadlines run).
//   failed      final until start: the export's identity changed or its size shrank on a
//               reconnect (or the NBD endpoint could not start); queued I/O failed with EIO
//   stopping    stop() in progress: no new requests, in-flight ones finish (the link keeps
//               reconnecting underneath) or fail with ESHUTDOWN after 10 s (force: at once)
//
// Backoff: reconnect-delay × 2^failures, capped at 30 s; failures reset by a successful HELLO;
// a policy change re-arms a backoff already running. The NBD endpoint starts once the first
// HELLO told us the size and stays up across reconnects until stop().
import { randomBytes } from 'node:crypto';
import type { TimerHandle } from '../../util/clock.js';
import { DstError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { formatHostPort, parseHostPort } from '../../util/parse.js';
import { Access, type Frame, type HelloReply } from '../../protocol/wire.js';
import { nbdSocketPath } from '../paths.js';
import {
  emptyStats, type EventFields, type EventName, type NodeContext, type NodeShow, type Policy, type RemoteConfig,
  type RemoteRuntime, type RemoteState, type Stats,
} from '../types.js';
import { Connection, type SocketFactory } from './connection.js';
import { ConnState, type ConnCloseInfo } from './conn-state.js';
import { startNbdEndpoint, type NbdEndpoint, type NbdEndpointOptions } from './nbd-endpoint.js';
import type { BlockDone, BlockRequest, BlockTarget } from './target.js';
import { STOP_GRACE_MS, TransactionTable } from './transactions.js';

/** Backoff cap (DESIGN §8). */
export const BACKOFF_CAP_MS = 30_000;

/** Delay before the next attempt after `failures` failed ones (0 = first failure): doubling, capped. */
export function backoffDelay(policy: Pick<Policy, 'reconnectDelayMs'>, failures: number): number {
  const base = Math.max(0, policy.reconnectDelayMs);
  return Math.min(BACKOFF_CAP_MS, base * 2 ** Math.min(failures, 30));
}

/** Injection points (tests); the engine passes none. */
export interface RemoteNodeDeps {
  /** TCP connector (default net.connect) */
  socketFactory?: SocketFactory;
  /** NBD endpoint starter (default startNbdEndpoint) */
  startEndpoint?: (opts: NbdEndpointOptions) => Promise<NbdEndpoint>;
}

type Phase = 'connecting' | 'ready' | 'backoff' | 'failed';

function permsOf(granted: number): 'r' | 'w' | 'rw' | null {
  const r = (granted & Access.READ) !== 0;
  const w = (granted & Access.WRITE) !== 0;
  return r && w ? 'rw' : r ? 'r' : w ? 'w' : null;
}

export function createRemoteNode(node: { readonly config: RemoteConfig }, ctx: NodeContext,
  deps: RemoteNodeDeps = {}): RemoteRuntime & BlockTarget {
  return new RemoteNode(node, ctx, deps);
}

class RemoteNode implements RemoteRuntime, BlockTarget {
  private readonly log: Logger;

  /** start() ran and stop() has not finished */
  private started = false;
  private phase: Phase = 'connecting';
  private phaseReason: string | null = null;
  /** stop() in progress (state 'stopping') and its promise */
  private stopping: Promise<void> | null = null;
  private stopRequested = false;
  /** the state last reported (state-changed events are emitted on change) */
  private reported: RemoteState = 'configured';
  /** bumped by every start/stop: late async results of an older run are dropped */
  private generation = 0;

  private table: TransactionTable | null = null;
  private conn: Connection | null = null;
  private sessionId: Buffer | null = null;

  // learned from the first HELLO_REPLY of this run
  private identity: Buffer | null = null;
  private sizeBytes: number | null = null;
  private perms: 'r' | 'w' | 'rw' | null = null;
  private exportMaxRequest = 0;
  private everReady = false;
  private reconnects = 0;

  // backoff
  private failures = 0;
  private backoffTimer: TimerHandle | null = null;
  private backoffStartedAt = 0;
  private backoffFailures = 0;

  private endpoint: NbdEndpoint | null = null;
  private readonly capacityListeners = new Set<() => void>();
  private waiters: { resolve: (s: RemoteState) => void; timer: TimerHandle }[] = [];

  constructor(private readonly node: { readonly config: RemoteConfig }, private readonly ctx: NodeContext,
    private readonly deps: RemoteNodeDeps) {
    this.log = ctx.log.child({ node: node.config.name });
  }

  get name(): string {
    return this.node.config.name;
  }

  private get policy(): Policy {
    return this.node.config.policy;
  }

  // ---- state ----

  get state(): RemoteState {
    if (this.stopRequested) return 'stopping';
    if (!this.started) return 'configured';
    return this.phase;
  }

  get reason(): string | null {
    const s = this.state;
    return s === 'backoff' || s === 'failed' ? this.phaseReason : null;
  }

  private setPhase(phase: Phase, reason: string | null): void {
    this.phase = phase;
    this.phaseReason = reason;
    this.sync();
  }

  /** Report a state change (event + waiters) if the visible state moved. */
  private sync(): void {
    const to = this.state;
    const from = this.reported;
    if (to === from) return;
    this.reported = to;
    this.log.info(`state ${from} → ${to}${this.reason ? ` (${this.reason})` : ''}`, { op: 'state' });
    this.emit('state-changed', { from, to, reason: this.reason });
    if (to === 'ready' || to === 'failed' || to === 'configured') this.wakeWaiters();
  }

  private emit(event: EventName, fields: EventFields = {}): void {
    try {
      this.ctx.events.emit(this.name, event, fields);
    } catch (err) {
      this.log.error(`event sink threw: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  // ---- lifecycle ----

  async start(): Promise<void> {
    if (this.stopping) await this.stopping;
    if (this.started && this.phase !== 'failed') return; // idempotent
    if (this.started) await this.teardown(true); // failed → a fresh start
    this.generation++;
    this.started = true;
    this.sessionId = randomBytes(16);
    this.identity = null;
    this.sizeBytes = null;
    this.perms = null;
    this.exportMaxRequest = 0;
    this.everReady = false;
    this.reconnects = 0;
    this.failures = 0;
    const table = new TransactionTable({
      clock: this.ctx.clock,
      log: this.log,
      policy: () => this.policy,
      emit: (event, fields) => this.emit(event, fields),
    });
    table.onCapacity(() => {
      for (const l of [...this.capacityListeners]) l();
    });
    this.table = table;
    this.setPhase('connecting', null);
    this.attempt();
  }

  async stop(opts: { force: boolean }): Promise<void> {
    if (this.stopping) {
      if (opts.force) this.table?.failAll('ESHUTDOWN', 'node stopped (forced)');
      return this.stopping;
    }
    if (!this.started) return;
    const table = this.table;
    this.stopRequested = true;
    this.sync(); // → stopping
    this.log.info(opts.force ? 'stopping (force)' : 'stopping: draining in-flight requests', { op: 'stop' });
    this.stopping = (async () => {
      try {
        if (table) await table.drain(opts.force ? 0 : STOP_GRACE_MS);
        await this.teardown(opts.force);
      } finally {
        this.started = false;
        this.stopRequested = false;
        this.stopping = null;
        this.sync(); // → configured
      }
    })();
    return this.stopping;
  }

  /** Close everything this run opened. */
  private async teardown(force: boolean): Promise<void> {
    this.generation++;
    this.cancelBackoff();
    const conn = this.conn;
    this.conn = null;
    conn?.close('node stopped', !force);
    const endpoint = this.endpoint;
    this.endpoint = null;
    if (endpoint) {
      try {
        await endpoint.close({ force });
      } catch (err) {
        this.log.warn(`closing the NBD endpoint: ${(err as Error)?.message ?? String(err)}`, { op: 'stop' });
      }
    }
    this.table?.close();
    this.table = null;
    this.sessionId = null;
    this.sizeBytes = null;
    this.perms = null;
    this.identity = null;
  }

  configChanged(): void {
    this.table?.policyChanged();
    this.conn?.policyChanged();
    if (this.backoffTimer) {
      // apply the new reconnect-delay to the backoff already running
      const delay = backoffDelay(this.policy, this.backoffFailures);
      const remaining = Math.max(0, this.backoffStartedAt + delay - this.ctx.clock.now());
      this.backoffTimer.cancel();
      this.backoffTimer = this.ctx.clock.setTimer(remaining, () => this.onBackoffTimer());
      this.log.info(`policy changed: next attempt in ${Math.round(remaining)} ms`, { op: 'backoff' });
    }
    this.maybeCapacity();
  }

  reconnect(): void {
    if (!this.started || this.phase === 'failed') {
      this.log.info(`reconnect ignored in state ${this.state}`, { op: 'reconnect' });
      return;
    }
    this.log.info('reconnect requested', { op: 'reconnect' });
    const conn = this.conn;
    this.conn = null;
    if (conn) {
      const wasReady = conn.state === ConnState.READY;
      conn.close('reconnect requested');
      this.table?.detach();
      if (wasReady) this.emit('disconnected', { reason: 'reconnect' });
    }
    this.cancelBackoff();
    if (this.phase === 'ready') this.setPhase('backoff', 'reconnect');
    this.attempt();
  }

  waitReady(ms: number): Promise<RemoteState> {
    const s = this.state;
    if (s === 'ready' || s === 'failed' || ms <= 0) return Promise.resolve(s);
    return new Promise((resolve) => {
      const w = {
        resolve,
        timer: this.ctx.clock.setTimer(ms, () => {
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve(this.state);
        }),
      };
      this.waiters.push(w);
    });
  }

  private wakeWaiters(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) {
      w.timer.cancel();
      w.resolve(this.state);
    }
  }

  // ---- connecting ----

  private attempt(): void {
    this.cancelBackoff();
    const table = this.table;
    if (!this.started || !table || this.phase === 'failed') return;
    let host: string;
    let port: number;
    try {
      ({ host, port } = parseHostPort(this.node.config.remote, 'remote address', false));
    } catch (err) {
      this.enterBackoff('link', (err as Error).message);
      return;
    }
    const conn: Connection = new Connection({
      host, port,
      clock: this.ctx.clock,
      log: this.log,
      policy: () => this.policy,
      exportName: this.node.config.export ?? '',
      sessionId: this.sessionId!,
      outstanding: () => table.outstanding() > 0,
      onReady: (reply) => this.onHello(conn, reply),
      onResponse: (frame) => this.onResponse(conn, frame),
      onClose: (info) => this.onConnClose(conn, info),
      // read at each handshake: `crypto set` applies at the next one (`node reconnect` forces it)
      crypto: () => this.node.config.crypto,
      cryptoPool: this.ctx.cryptoPool,
      ...(this.deps.socketFactory ? { socketFactory: this.deps.socketFactory } : {}),
    });
    this.conn = conn;
    this.log.debug(`connecting to ${host}:${port}`, { op: 'connect' });
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
      const want = this.node.config.size ?? reply.size;
      this.sizeBytes = Math.min(want, reply.size);
      if (want > reply.size) {
        this.log.warn(`configured size ${want} exceeds the export's ${reply.size} bytes; using ${reply.size}`, { op: 'hello' });
      }
    }
    this.perms = perms;
    this.exportMaxRequest = reply.maxRequest;
    this.failures = 0;
    if (this.everReady) this.reconnects++;
    this.everReady = true;
    const sessionHex = this.sessionId!.toString('hex');
    this.log.info(`connected: session ${sessionHex}, size ${this.sizeBytes}, permissions ${perms}`, { op: 'hello' });
    if (first && !this.endpoint) {
      // `ready` promises a serving NBD socket: announce it only once the endpoint listens.
      this.table.attach(conn);
      void this.startEndpoint(conn, sessionHex);
      return;
    }
    this.becomeReady(sessionHex);
    this.table.attach(conn);
  }

  private becomeReady(sessionHex: string): void {
    this.setPhase('ready', null);
    this.emit('connected', { sessionId: sessionHex });
  }

  private onResponse(conn: Connection, frame: Frame): void {
    if (conn !== this.conn || !this.table) return;
    const result = this.table.onResponse(frame.id, frame.status, frame.payload);
    if (result === 'bad') conn.fail('link', `bad IO_RESPONSE for id ${frame.id}`, 'EPROTO');
    else if (result === 'not-run') conn.fail('link', `the export is stopping (ESHUTDOWN for id ${frame.id}): reconnecting to replay`, 'ESHUTDOWN');
  }

  private onConnClose(conn: Connection, info: ConnCloseInfo): void {
    if (conn !== this.conn) return; // closed on purpose, already replaced
    this.conn = null;
    const requeued = this.table?.detach() ?? 0;
    if (info.wasReady) {
      this.log.warn(`disconnected: ${info.detail}${requeued ? `; ${requeued} request(s) will be replayed` : ''}`,
        { op: 'link', errno: info.errno });
      this.emit('disconnected', { reason: info.reason });
    } else if (info.reason === 'auth-failed' || info.reason === 'suite-mismatch' || info.reason === 'denied') {
      // not a flaky link: the configuration of one side must change; say so loudly (the backoff
      // still doubles, so a wrong key never becomes a retry storm)
      this.log.error(`connection refused (${info.reason}): ${info.detail}`, { op: 'connect', errno: info.errno });
      if (info.reason !== 'denied') this.emit('auth-failed', { message: info.detail });
    } else {
      this.log.warn(`connection attempt failed: ${info.detail}`, { op: 'connect', errno: info.errno });
    }
    if (!this.started || this.phase === 'failed') return;
    this.enterBackoff(info.reason === 'closed' ? 'link' : info.reason, info.detail);
  }

  private enterBackoff(reason: string, detail: string): void {
    const delay = backoffDelay(this.policy, this.failures);
    this.backoffFailures = this.failures;
    this.failures++;
    this.backoffStartedAt = this.ctx.clock.now();
    this.cancelBackoff();
    this.backoffTimer = this.ctx.clock.setTimer(delay, () => this.onBackoffTimer());
    this.log.info(`backoff (${reason}): next attempt in ${delay} ms`, { op: 'backoff', detail });
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

  /** Final until start: close the link, fail every queued transaction with EIO. */
  private fail(reason: string, detail: string): void {
    this.log.error(`failed (${reason}): ${detail}; failing queued I/O with EIO`, { op: 'hello', errno: 'EIO' });
    this.cancelBackoff();
    const conn = this.conn;
    this.conn = null;
    conn?.close(detail);
    this.setPhase('failed', reason);
    this.table?.failAll('EIO', `${reason}: ${detail}`);
  }

  private async startEndpoint(conn: Connection, sessionHex: string): Promise<void> {
    const gen = this.generation;
    const cfg = this.node.config;
    let tcp: { host: string; port: number } | null = null;
    try {
      tcp = cfg.nbdListen ? parseHostPort(cfg.nbdListen, 'NBD listen address') : null;
      const ep = await (this.deps.startEndpoint ?? startNbdEndpoint)({
        target: this,
        socketPath: nbdSocketPath(this.ctx.runtimeDir, cfg.name),
        tcp,
        log: this.log,
        clock: this.ctx.clock,
        addrCaps: () => this.policy,
      });
      if (gen !== this.generation) {
        await ep.close({ force: true });
        return;
      }
      this.endpoint = ep;
      if (conn === this.conn && this.phase !== 'failed') this.becomeReady(sessionHex);
    } catch (err) {
      if (gen !== this.generation) return;
      this.fail('nbd-endpoint', `cannot serve NBD: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  // ---- BlockTarget ----

  size(): number {
    return this.sizeBytes ?? 0;
  }

  permissions(): 'r' | 'w' | 'rw' {
    return this.perms ?? 'r';
  }

  maxRequest(): number {
    const p = this.policy.maxRequest;
    return this.exportMaxRequest > 0 ? Math.min(p, this.exportMaxRequest) : p;
  }

  private accepting(): boolean {
    return this.started && !this.stopRequested && this.phase !== 'failed' && this.table !== null;
  }

  hasCapacity(): boolean {
    // When not accepting, requests are refused at once without a slot, so never block the reader.
    return this.accepting() ? this.table!.hasCapacity() : true;
  }

  onCapacity(listener: () => void): () => void {
    this.capacityListeners.add(listener);
    return () => { this.capacityListeners.delete(listener); };
  }

  private maybeCapacity(): void {
    if (this.accepting() && this.table!.hasCapacity()) for (const l of [...this.capacityListeners]) l();
  }

  submit(req: BlockRequest, done: BlockDone): void {
    if (!this.accepting()) {
      const errno = this.started && this.phase === 'failed' && !this.stopRequested ? 'EIO' : 'ESHUTDOWN';
      this.log.debug(`${req.op} refused in state ${this.state}: ${errno}`, { op: req.op, errno });
      queueMicrotask(() => done(errno, null));
      return;
    }
    if (!this.table!.hasCapacity()) {
      throw new DstError('DST_ERR_BUSY', `${req.op}: transaction pool full`, { errno: 'EAGAIN' });
    }
    this.table!.submit(req, done);
  }

  // ---- show ----

  show(): Pick<NodeShow, 'state' | 'reason' | 'size' | 'listen' | 'nbd' | 'sessionId' | 'permissions' | 'stats'> {
    const ep = this.endpoint;
    const stats: Stats = this.table ? this.table.stats() : emptyStats();
    stats.reconnects = this.reconnects;
    return {
      state: this.state,
      reason: this.reason,
      size: this.sizeBytes,
      listen: null,
      nbd: ep && ep.socketPath !== null ? {
        socket: ep.socketPath,
        uri: ep.uri,
        listen: ep.tcpAddress ? formatHostPort(ep.tcpAddress) : null,
      } : null,
      sessionId: this.sessionId ? this.sessionId.toString('hex') : null,
      permissions: this.perms,
      stats,
    };
  }
}
