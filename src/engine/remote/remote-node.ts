// A remote node: connects to an export over the DST wire protocol and serves it locally over NBD
// (DESIGN §4, §7, §8). It owns the node's life and its NBD endpoint; the link to the export — its
// connection, transaction table, backoff and identity checks — is a Leg (leg.ts):
//
//   NBD endpoint ──submit()──► Leg (TransactionTable ──► Connection) ──TCP──► export
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
// The NBD endpoint starts once the first HELLO told us the size and stays up across reconnects
// until stop().
import type { TimerHandle } from '../../util/clock.js';
import { DstError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { formatHostPort, parseHostPort } from '../../util/parse.js';
import { nbdSocketPath } from '../paths.js';
import type { EventFields, EventName, NodeContext, NodeShow, Policy, RemoteConfig, RemoteRuntime, RemoteState } from '../types.js';
import type { Connection, SocketFactory } from './connection.js';
import { Leg } from './leg.js';
import { startNbdEndpoint, type NbdEndpoint, type NbdEndpointOptions } from './nbd-endpoint.js';
import type { BlockDone, BlockRequest, BlockTarget } from './target.js';
import { STOP_GRACE_MS } from './transactions.js';

/** Injection points (tests); the engine passes none. */
export interface RemoteNodeDeps {
  /** TCP connector (default net.connect) */
  socketFactory?: SocketFactory;
  /** NBD endpoint starter (default startNbdEndpoint) */
  startEndpoint?: (opts: NbdEndpointOptions) => Promise<NbdEndpoint>;
}

export function createRemoteNode(node: { readonly config: RemoteConfig }, ctx: NodeContext,
  deps: RemoteNodeDeps = {}): RemoteRuntime & BlockTarget {
  return new RemoteNode(node, ctx, deps);
}

class RemoteNode implements RemoteRuntime, BlockTarget {
  private readonly log: Logger;

  /** start() ran and stop() has not finished */
  private started = false;
  /** stop() in progress (state 'stopping') and its promise */
  private stopping: Promise<void> | null = null;
  private stopRequested = false;
  /** the state last reported (state-changed events are emitted on change) */
  private reported: RemoteState = 'configured';
  /** bumped by every start/stop: late async results of an older run are dropped */
  private generation = 0;

  /** the link to the export */
  private readonly leg: Leg;

  private endpoint: NbdEndpoint | null = null;
  private waiters: { resolve: (s: RemoteState) => void; timer: TimerHandle }[] = [];

  constructor(private readonly node: { readonly config: RemoteConfig }, private readonly ctx: NodeContext,
    private readonly deps: RemoteNodeDeps) {
    this.log = ctx.log.child({ node: node.config.name });
    const config = (): RemoteConfig => this.node.config;
    this.leg = new Leg({
      ctx, log: this.log,
      remote: () => config().remote,
      exportName: () => config().export ?? '',
      sizeLimit: () => config().size,
      policy: () => this.policy,
      crypto: () => config().crypto,
      emit: (event, fields) => this.emit(event, fields),
      phaseChanged: () => this.sync(),
      firstHello: (conn, sessionHex) => { void this.startEndpoint(conn, sessionHex); },
      ...(deps.socketFactory ? { socketFactory: deps.socketFactory } : {}),
    });
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
    return this.leg.phase;
  }

  get reason(): string | null {
    const s = this.state;
    return s === 'backoff' || s === 'failed' ? this.leg.reason : null;
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
    if (this.started && this.leg.phase !== 'failed') return; // idempotent
    if (this.started) await this.teardown(true); // failed → a fresh start
    this.generation++;
    this.started = true;
    this.leg.start();
  }

  async stop(opts: { force: boolean }): Promise<void> {
    if (this.stopping) {
      if (opts.force) this.leg.table?.failAll('ESHUTDOWN', 'node stopped (forced)');
      return this.stopping;
    }
    if (!this.started) return;
    const table = this.leg.table;
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
    this.leg.closeLink(force);
    const endpoint = this.endpoint;
    this.endpoint = null;
    if (endpoint) {
      try {
        await endpoint.close({ force });
      } catch (err) {
        this.log.warn(`closing the NBD endpoint: ${(err as Error)?.message ?? String(err)}`, { op: 'stop' });
      }
    }
    this.leg.closeTable();
  }

  configChanged(): void {
    this.leg.configChanged();
    this.maybeCapacity();
  }

  reconnect(): void {
    if (!this.started || this.leg.phase === 'failed') {
      this.log.info(`reconnect ignored in state ${this.state}`, { op: 'reconnect' });
      return;
    }
    this.log.info('reconnect requested', { op: 'reconnect' });
    this.leg.reconnect();
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
      this.leg.becomeReady(conn, sessionHex);
    } catch (err) {
      if (gen !== this.generation) return;
      this.leg.fail('nbd-endpoint', `cannot serve NBD: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  // ---- BlockTarget ----

  size(): number {
    return this.leg.sizeBytes ?? 0;
  }

  permissions(): 'r' | 'w' | 'rw' {
    return this.leg.perms ?? 'r';
  }

  maxRequest(): number {
    return this.leg.maxRequest();
  }

  private accepting(): boolean {
    return this.started && !this.stopRequested && this.leg.phase !== 'failed' && this.leg.table !== null;
  }

  hasCapacity(): boolean {
    // When not accepting, requests are refused at once without a slot, so never block the reader.
    return this.accepting() ? this.leg.hasCapacity() : true;
  }

  onCapacity(listener: () => void): () => void {
    return this.leg.onCapacity(listener);
  }

  private maybeCapacity(): void {
    if (this.accepting() && this.leg.hasCapacity()) this.leg.capacityReturned();
  }

  submit(req: BlockRequest, done: BlockDone): void {
    if (!this.accepting()) {
      const errno = this.started && this.leg.phase === 'failed' && !this.stopRequested ? 'EIO' : 'ESHUTDOWN';
      this.log.debug(`${req.op} refused in state ${this.state}: ${errno}`, { op: req.op, errno });
      queueMicrotask(() => done(errno, null));
      return;
    }
    if (!this.leg.hasCapacity()) {
      throw new DstError('DST_ERR_BUSY', `${req.op}: transaction pool full`, { errno: 'EAGAIN' });
    }
    this.leg.submit(req, done);
  }

  // ---- show ----

  show(): Pick<NodeShow, 'state' | 'reason' | 'size' | 'listen' | 'nbd' | 'sessionId' | 'permissions' | 'stats'> {
    const ep = this.endpoint;
    const stats = this.leg.stats();
    return {
      state: this.state,
      reason: this.reason,
      size: this.leg.sizeBytes,
      listen: null,
      nbd: ep && ep.socketPath !== null ? {
        socket: ep.socketPath,
        uri: ep.uri,
        listen: ep.tcpAddress ? formatHostPort(ep.tcpAddress) : null,
      } : null,
      sessionId: this.leg.sessionId ? this.leg.sessionId.toString('hex') : null,
      permissions: this.leg.perms,
      stats,
    };
  }
}
