// The export node (DESIGN §4, §7, §8): listener → session (handshake, ACL, fencing, dedup) →
// validate → backend (file or block device). This file is the node: lifecycle, listener,
// admission at accept, disk and counters. Each accepted socket is a Connection (connection.ts:
// socket and phases), which asks handshake.ts about HELLO/AUTH, joins the session through
// session.ts (fencing, dedup) and hands IO frames to requests.ts (window, validate, backend).
//
//   configured ──start──► listening ──stop──► stopping ──► configured
//        ▲                   │ disk gone / listener lost
//        └──────stop──── failed(reason) ◄── start failure (disk, identity, bind)
//
// `node.config` is a getter: the registry swaps the config object on `security add/del` etc.,
// so every read goes through config() and ACL changes apply to the next request.
import { randomBytes } from 'node:crypto';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Clock } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import { DstError, errnoOf } from '../../util/errors.js';
import { formatHostPort, normalizePeerAddress, parseHostPort } from '../../util/parse.js';
import type {
  EventFields, EventName, ExportConfig, ExportState, Limits, NodeContext, NodeRuntime, RuntimeShow,
} from '../types.js';
import { FileBackend, type Backend } from './backend.js';
import { NbdBackend } from './nbd-backend.js';
import { isNbdUri } from '../../protocol/nbd-uri.js';
import { adoptWithUserBuffer } from '../io/adopt.js';
import { HoldWriteFilter, testSwitchesFromEnv, type TestSwitches } from './filters.js';
import { AclCache } from './acl.js';
import { ReportLimiter, addrCapExceeded, type AdmittedPeer } from '../admission.js';
import { SessionLayer } from './session.js';
import { ExportStats } from './stats.js';
import { loadIdentity } from './identity.js';
import { MirrorClaims } from './mirror-claims.js';
import { diskLockText, lockDisk } from './disk-lock.js';
import { Connection, type ExportHost } from './connection.js';
import { refuseSocket } from './handshake.js';
import { MemoryReclaimer } from '../reclaim.js';
import type { MetricsSource, NodeMetricsView } from '../metrics/collect.js';

/** How long a stop drains before connections are destroyed (DESIGN §4). */
export const DRAIN_MS = 10_000;
/** Refused sockets allowed to linger at once; beyond, a refused socket is closed once its refusal is written. */
const MAX_LINGERING_REFUSALS = 64;
/** Errors that mean the disk itself is gone (device unplugged, medium removed). */
const DISK_GONE = new Set(['ENODEV', 'ENXIO', 'ENOMEDIUM']);

export interface ExportNodeOptions {
  /** wrap the backend chain, outermost last (tests: ErrorFilter, DelayFilter) */
  wrapBackend?: (backend: Backend) => Backend;
  /** environment for the test switches (default process.env) */
  env?: NodeJS.ProcessEnv;
}

export interface ExportTestCounters {
  /** writes held by DST_TEST_HOLD_WRITE that reached the disk */
  heldWritesExecuted: number;
  connections: number;
  sessions: number;
  fencing: boolean;
}

const testCounters = new WeakMap<NodeRuntime, () => ExportTestCounters>();

/** Test hook: counters of an export runtime created by createExportNode (null for others). */
export function exportTestCounters(rt: NodeRuntime): ExportTestCounters | null {
  return testCounters.get(rt)?.() ?? null;
}

export function createExportNode(node: { readonly config: ExportConfig }, ctx: NodeContext,
  opts: ExportNodeOptions = {}): NodeRuntime {
  const rt = new ExportNode(node, ctx, opts);
  testCounters.set(rt, () => rt.testCounters());
  return rt;
}

class ExportNode implements NodeRuntime, MetricsSource {
  private readonly name: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly limits: Limits;
  private readonly sessions: SessionLayer<Connection>;
  private readonly stats: ExportStats;
  /** the node as its connections see it */
  private readonly host: ExportHost;

  private _state: ExportState = 'configured';
  private _reason: string | null = null;
  private chain: Backend | null = null;
  /** the disk when it is an NBD server (its link state for node show; its read-only flag) */
  private nbd: NbdBackend | null = null;
  /** the config with readonly set, while the NBD server serves read-only and the config does not say so */
  private roView: { base: ExportConfig; view: ExportConfig } | null = null;
  private hold: HoldWriteFilter | null = null;
  private effSize: number | null = null;
  private ident: Buffer | null = null;
  private mirrorClaims: MirrorClaims | null = null;
  /** this run's instance id (HELLO_REPLY): a restarted export may have lost unflushed writes */
  private instanceId: Buffer = randomBytes(16);
  private server: net.Server | null = null;
  private boundAddr: string | null = null;
  private readonly conns = new Set<Connection>();
  private idleWaiters: (() => void)[] = [];
  private starting: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private forceDrain: (() => void) | null = null;
  private readonly acl: AclCache;
  private readonly reclaimer: MemoryReclaimer;
  /** refusals at accept are logged (and acl-denied emitted) at most once per address per 10 s */
  private readonly reports: ReportLimiter;
  /** refused sockets given LINGER_MS to read their refusal */
  private lingering = 0;
  private readonly switches: TestSwitches;
  private heldExecutedBefore = 0;

  constructor(private readonly node: { readonly config: ExportConfig }, private readonly ctx: NodeContext,
    private readonly opts: ExportNodeOptions) {
    this.name = node.config.name;
    this.log = ctx.log.child({ node: this.name });
    this.clock = ctx.clock;
    this.limits = ctx.limits;
    this.reclaimer = new MemoryReclaimer(this.clock, this.log);
    this.switches = testSwitchesFromEnv(opts.env ?? process.env);
    if (this.switches.noFencing) this.log.warn('DST_TEST_NO_FENCING=1: fencing and dedup are OFF (tests only)', { op: 'create' });
    if (this.switches.holdWrite) this.log.warn('DST_TEST_HOLD_WRITE set (tests only)', { op: 'create', ...this.switches.holdWrite });
    this.sessions = new SessionLayer<Connection>(!this.switches.noFencing, this.log);
    this.stats = new ExportStats(this.clock, () => this.checkIdle());
    this.host = this.connectionHost();
    this.reports = new ReportLimiter(this.clock);
    this.acl = new AclCache((entry, error) => this.log.warn('ignoring an ACL entry', { op: 'acl', addr: entry.addr, error }));
  }

  // ---- NodeRuntime ----

  get state(): ExportState {
    return this._state;
  }

  get reason(): string | null {
    return this._reason;
  }

  config(): ExportConfig {
    return this.node.config;
  }

  async start(): Promise<void> {
    if (this.starting) return this.starting;
    if (this.stopping) await this.stopping;
    if (this._state === 'listening') return;
    if (this.starting) return this.starting;
    this.starting = this.doStart().finally(() => { this.starting = null; });
    return this.starting;
  }

  async stop(opts: { force: boolean }): Promise<void> {
    if (this.starting) await this.starting.catch(() => {});
    if (this.stopping) {
      if (opts.force) this.forceDrain?.();
      return this.stopping;
    }
    if (this._state === 'configured') return;
    this.stopping = this.doStop(opts.force).finally(() => { this.stopping = null; });
    return this.stopping;
  }

  configChanged(): void {
    this.acl.invalidate();
    const cfg = this.config();
    this.log.debug('config changed', { op: 'config', acl: cfg.acl.length });
    if (this._state === 'listening' && cfg.acl.length === 0) this.warnEmptyAcl();
  }

  show(): RuntimeShow {
    const cfg = this.config();
    return {
      state: this._state,
      reason: this._reason,
      size: this.effSize ?? cfg.size ?? null,
      listen: this.boundAddr ?? cfg.listen,
      nbd: null,
      sessionId: null,
      permissions: null,
      stats: this.stats.snapshot(),
      latency: this.stats.metrics.show(),
      backend: this.nbd?.show() ?? null,
    };
  }

  /** for the metrics endpoint and the rates of status: the requests as the export answered them */
  metrics(): NodeMetricsView {
    return { requests: this.stats.metrics, legs: [], nbdConnections: null };
  }

  testCounters(): ExportTestCounters {
    return {
      heldWritesExecuted: this.heldExecutedBefore + (this.hold?.executed ?? 0),
      connections: this.conns.size,
      sessions: this.sessions.size,
      fencing: this.sessions.fencing,
    };
  }

  // ---- the node as its connections see it ----

  private connectionHost(): ExportHost {
    const node = this.node;
    return {
      name: this.name, log: this.log, clock: this.clock, limits: this.limits, cryptoPool: this.ctx.cryptoPool,
      sessions: this.sessions, stats: this.stats,
      config: () => this.servedConfig(),
      serving: () => this._state === 'listening',
      size: () => this.effSize ?? 0,
      fastZero: () => this.chain?.fastZero() ?? false,
      instance: () => this.instanceId,
      identity: () => {
        if (!this.ident) throw new DstError('DST_ERR_INTERNAL', `node ${this.name}: no identity before start`);
        return this.ident;
      },
      claims: () => {
        if (!this.mirrorClaims) throw new DstError('DST_ERR_INTERNAL', `node ${this.name}: no mirror claims before start`);
        return this.mirrorClaims;
      },
      backend: () => {
        if (!this.chain) throw Object.assign(new Error(`ESHUTDOWN: node ${this.name} has no open disk`), { code: 'ESHUTDOWN' });
        return this.chain;
      },
      aclEntry: (peer) => this.acl.lookup(node.config.acl, peer),
      emit: (event, fields) => this.emit(event, fields),
      connectionClosed: (conn) => {
        this.conns.delete(conn);
        this.reclaimer.schedule(); // the large buffers it used may now be given back
        this.checkIdle();
      },
      backendFailed: (err) => {
        const errno = errnoOf(err);
        if (errno && DISK_GONE.has(errno)) this.fail(`disk ${node.config.disk} is gone (${errno})`);
      },
    };
  }

  // ---- internals ----

  /** The config connections see: read-only while the NBD server behind the export is (one object per config). */
  private servedConfig(): ExportConfig {
    const c = this.node.config;
    if (c.readonly || this.nbd === null || !this.nbd.readOnly) return c;
    if (this.roView?.base !== c) this.roView = { base: c, view: Object.freeze({ ...c, readonly: true }) };
    return this.roView.view;
  }

  private openNbd(uri: string): Promise<NbdBackend> {
    return NbdBackend.open(uri, {
      clock: this.clock, log: this.log, policy: () => this.config().policy,
      onLink: (up, message) => this.emit(up ? 'connected' : 'disconnected', { op: 'nbd-backend', addr: uri, message }),
    });
  }

  private emit(event: EventName, fields: EventFields): void {
    this.ctx.events.emit(this.name, event, fields);
  }

  private setState(to: ExportState, reason: string | null = null): void {
    const from = this._state;
    this._state = to;
    this._reason = reason;
    if (from === to) return;
    const level = to === 'failed' ? 'error' : 'info';
    this.log[level](`state ${from} → ${to}`, { op: 'state', reason });
    this.emit('state-changed', { from, to, reason });
  }

  private warnEmptyAcl(): void {
    this.log.warn(`the ACL is empty: nobody may connect; add an entry with "dst security add ${this.name} --addr IP[/PREFIX] --perm rw"`,
      { op: 'acl' });
  }

  private async doStart(): Promise<void> {
    const cfg = this.config();
    await this.teardown(true); // leftovers of a failed run
    this.effSize = null;
    this.boundAddr = null;

    // 1. the disk: a file or block device, or an NBD server
    let disk: FileBackend | NbdBackend;
    try {
      disk = isNbdUri(cfg.disk) ? await this.openNbd(cfg.disk) : await FileBackend.open(cfg.disk, cfg.readonly);
    } catch (err) {
      const errno = errnoOf(err);
      const msg = (err as Error).message;
      this.log.error('cannot open disk', { op: 'start', disk: cfg.disk, errno, error: msg });
      this.setState('failed', `disk ${cfg.disk}: ${errno ?? msg}`);
      if (err instanceof DstError) throw err;
      throw new DstError(errno === 'ENOENT' ? 'DST_ERR_NOT_FOUND' : 'DST_ERR_IO',
        `node ${this.name}: cannot open disk ${cfg.disk}: ${msg}`, { errno, cause: err });
    }
    // one disk, one export across processes: hold the disk's lock while serving (closing the fd drops it)
    try {
      if (disk instanceof FileBackend && !await lockDisk(disk.fd, cfg.disk, this.name)) this.log.warn(`disk lock ${diskLockText}`, { op: 'start', disk: cfg.disk });
    } catch (err) {
      await disk.close();
      this.log.error('disk is served elsewhere', { op: 'start', disk: cfg.disk, error: (err as Error).message });
      this.setState('failed', `disk ${cfg.disk}: ${(err as Error).message}`);
      throw err;
    }
    const diskSize = disk.info.size;
    if (cfg.size !== null && cfg.size > diskSize) {
      this.log.warn('configured size exceeds the disk: serving the disk size', { op: 'start', size: cfg.size, diskSize });
    }
    const size = Math.min(cfg.size ?? diskSize, diskSize);

    // 2. identity
    let ident: Buffer;
    let claims: MirrorClaims;
    try {
      ident = await loadIdentity(this.ctx.stateDir, this.name, cfg.disk, this.log);
      claims = await MirrorClaims.load(this.ctx.stateDir, this.name, ident, this.log);
    } catch (err) {
      await disk.close();
      this.setState('failed', `identity: ${(err as Error).message}`);
      throw err;
    }

    // 3. the backend chain
    let chain: Backend = disk;
    let hold: HoldWriteFilter | null = null;
    if (this.switches.holdWrite) {
      hold = new HoldWriteFilter(chain, this.switches.holdWrite.offset, this.switches.holdWrite.ms, this.clock, this.log);
      chain = hold;
    }
    if (this.opts.wrapBackend) chain = this.opts.wrapBackend(chain);

    // 4. the listener
    let server: net.Server;
    try {
      const hp = parseHostPort(cfg.listen, 'listen address');
      server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: hp.host, port: hp.port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await chain.close().catch(() => {});
      const errno = errnoOf(err);
      const msg = (err as Error).message;
      this.log.error('cannot listen', { op: 'start', listen: cfg.listen, errno, error: msg });
      this.setState('failed', `listen ${cfg.listen}: ${errno ?? msg}`);
      if (err instanceof DstError) throw err;
      throw new DstError(errno === 'EADDRINUSE' ? 'DST_ERR_BUSY' : 'DST_ERR_IO',
        `node ${this.name}: cannot listen on ${cfg.listen}: ${msg}`, { errno, cause: err });
    }
    server.on('error', (err) => {
      this.log.error('listener error', { op: 'listen', errno: errnoOf(err), error: err.message });
      this.fail(`listener lost: ${errnoOf(err) ?? err.message}`);
    });
    server.on('connection', (socket) => this.onConnection(socket));
    const addr = server.address() as AddressInfo;

    this.chain = chain;
    this.nbd = disk instanceof NbdBackend ? disk : null;
    this.hold = hold;
    this.effSize = size;
    this.ident = ident;
    this.mirrorClaims = claims;
    this.instanceId = randomBytes(16);
    this.server = server;
    this.boundAddr = formatHostPort({ host: addr.address, port: addr.port });
    this.acl.invalidate();
    this.log.info('serving', {
      op: 'start', disk: cfg.disk, size, blockDevice: disk.info.blockDevice, listen: this.boundAddr, readonly: cfg.readonly,
    });
    this.setState('listening'); // (an empty ACL at start is warned about by the registry's node start)
  }

  /**
   * Admission before cost: who the peer is is decided here, before it gets a connection slot, a
   * HELLO timer or a read. Denied by the ACL (or covered by no entry) → EACCES; over a per-address
   * cap or the node's cap → EBUSY. Either way one HELLO_REPLY refusal, written without reading.
   */
  private onConnection(socket: Socket): void {
    if (this._state !== 'listening') {
      socket.destroy();
      return;
    }
    const addr = normalizePeerAddress(socket.remoteAddress ?? 'unknown');
    const entry = this.host.aclEntry(addr);
    if (entry === null || entry.perm === 'none') {
      const message = `address ${addr} is not allowed by node ${this.name}`;
      const report = this.reports.take(`deny ${addr}`);
      if (report !== null) {
        this.log.warn('connection refused: address not allowed', { op: 'accept', addr, suppressed: report.suppressed });
        this.emit('acl-denied', report.suppressed > 0 ? { addr, count: report.suppressed } : { addr });
      }
      this.refuseAtAccept(socket, 'EACCES', message);
      return;
    }
    const max = this.limits.maxConnectionsPerExport;
    const over = addrCapExceeded(this.admitted(), addr, this.config().policy)
      ?? (this.conns.size >= max ? `node ${this.name} already has ${max} connections (the limit)` : null);
    if (over !== null) {
      const report = this.reports.take(`busy ${addr}`);
      if (report !== null) this.log.warn(`connection refused: ${over}`, { op: 'accept', addr, suppressed: report.suppressed });
      this.refuseAtAccept(socket, 'EBUSY', over);
      return;
    }
    // Reads into buffers the connection chooses (no 64 KiB allocation per read); plain socket if not possible.
    let conn: Connection | null = null;
    const scratch = Buffer.allocUnsafe(64 * 1024);
    const adopted = adoptWithUserBuffer(socket,
      () => (conn !== null ? conn.readTarget(scratch) : scratch),
      (n, buf) => { conn?.onBytes(buf.subarray(0, n), true); });
    conn = new Connection(this.host, adopted ?? socket, adopted !== null);
    this.conns.add(conn);
    if (adopted === null) socket.resume();
  }

  /** Refuse at accept; the refused sockets lingering to read their refusal are bounded. */
  private refuseAtAccept(socket: Socket, errno: string, message: string): void {
    const linger = this.lingering < MAX_LINGERING_REFUSALS;
    if (linger) {
      this.lingering++;
      socket.once('close', () => { this.lingering--; });
    }
    refuseSocket(socket, errno, message, linger ? this.clock : null);
  }

  private *admitted(): Iterable<AdmittedPeer> {
    for (const c of this.conns) yield { addr: normalizePeerAddress(c.peer), handshaking: c.handshaking };
  }

  private async doStop(force: boolean): Promise<void> {
    if (this._state !== 'listening') {
      // failed (or never fully started): release what is left
      await this.teardown(true);
      this.setState('configured');
      return;
    }
    this.setState('stopping');
    this.closeServer();
    for (const c of [...this.conns]) {
      if (force) c.destroy('node stopping (forced)');
      else c.beginClose('node stopping');
    }
    if (!force && !this.isIdle()) {
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimer(DRAIN_MS, () => {
          this.log.warn('drain timed out: closing connections', { op: 'stop', inflight: this.stats.inflight, ms: DRAIN_MS });
          this.forceDrain?.();
        });
        this.forceDrain = () => {
          for (const c of [...this.conns]) c.destroy('node stopping (forced)');
          timer.cancel();
          this.forceDrain = null;
          resolve();
        };
        this.idleWaiters.push(() => {
          timer.cancel();
          this.forceDrain = null;
          resolve();
        });
      });
    }
    await this.teardown(force);
    this.setState('configured');
  }

  private isIdle(): boolean {
    return this.conns.size === 0 && this.stats.inflight === 0;
  }

  private checkIdle(): void {
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private closeServer(): void {
    if (!this.server) return;
    this.server.close();
    this.server = null;
    this.boundAddr = null;
  }

  /** Close the listener, the connections and the disk. The fds close once issued calls finish. */
  private async teardown(force: boolean): Promise<void> {
    this.closeServer();
    if (force) for (const c of [...this.conns]) c.destroy('node stopped');
    const chain = this.chain;
    if (this.hold) this.heldExecutedBefore += this.hold.executed;
    this.chain = null;
    this.nbd = null;
    this.hold = null;
    if (!chain) return;
    // Never close an fd under a running call (the number could be reused by another open):
    // wait for them, bounded; if they hang, the fds close when they finish.
    const closing = chain.close().catch((err) => {
      this.log.error('closing the disk failed', { op: 'stop', errno: errnoOf(err), error: (err as Error).message });
    });
    let resolveBound = (): void => {};
    const bounded = new Promise<void>((resolve) => { resolveBound = resolve; });
    const timer = this.clock.setTimer(DRAIN_MS, () => {
      this.log.error('backend calls still running: the disk closes when they finish', { op: 'stop', inflight: this.stats.inflight });
      resolveBound();
    });
    await Promise.race([closing, bounded]);
    timer.cancel();
  }

  /** A runtime failure: disk gone or listener lost. */
  private fail(reason: string): void {
    if (this._state !== 'listening') return;
    this.setState('failed', reason);
    this.closeServer();
    for (const c of [...this.conns]) c.destroy(reason);
    void this.teardown(true);
  }
}
