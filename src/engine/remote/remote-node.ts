// A remote node: connects to an export over the DST wire protocol and serves it locally over NBD
// (DESIGN §4, §7, §8). It owns the node's life and its NBD endpoint; the link to the export — its
// connection, transaction table, backoff and identity checks — is a Leg (leg.ts):
//
//   NBD endpoint ──submit()──► Leg (TransactionTable ──► Connection) ──TCP──► export
//
// States (what show() and state-changed report; the leg's own are in leg.ts): configured (not
// started), connecting (no HELLO yet, no attempt failed), ready (serving), backoff (an attempt
// failed or the link was lost; the next is armed; queued transactions wait), failed (final until
// start: identity changed, size shrank, the endpoint could not start; queued I/O failed with EIO),
// stopping (in-flight requests finish, or fail with ESHUTDOWN after 10 s; force: at once).
// The NBD endpoint starts once the first HELLO told the size and stays up until stop().
//
// A multi-leg node (layout mirror, linear or stripe; issue 14) has one Leg per export and a Device
// (engine/layout/) in a DeviceSlot (device-slot.ts). It serves once every leg's first HELLO told its
// size (a mirror: once every leg answered or failed an attempt, one with a size); its state is the
// device's health: ready while every block can be served (a mirror: one leg in sync), backoff
// (reason `leg`) while some wait for a leg, failed when no leg can serve. `node leg add/del`
// (leg-edits.ts) pauses the device, swaps the legs and reassembles behind the same endpoint.
import { DstError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { parseHostPort } from '../../util/parse.js';
import { nbdSocketPath } from '../paths.js';
import {
  type EventFields, type EventName, type LegConfig, type LegEdit, type LegState, type NodeContext, type Policy, type RemoteConfig, type RemoteEntry, type RemoteRuntime,
  type RemoteState, type RuntimeShow, type StartOptions, type VerifyOptions, type VerifyReport,
} from '../types.js';
import type { Connection, SocketFactory } from './connection.js';
import { Leg, type LegOptions } from './leg.js';
import { editLegs, reorderLegs, type LegEditHost } from './leg-edits.js';
import type { Device } from '../layout/device.js';
import { LegPort } from '../layout/leg-port.js';
import type { SplitBrain } from '../layout/assemble.js';
import { openDevice } from './open-device.js';
import { AssemblyGate } from './assembly-gate.js';
import { DeviceSlot } from './device-slot.js';
import { checkResolve, checkVerify } from './mirror-checks.js';
import { StateWaiters } from './state-waiters.js';
import { endpointShow, legShows, legStateOf, permissionsOf, reportLegStates, sameExportAs, sumStats } from './multi-show.js';
import { startNbdEndpoint, type NbdEndpoint, type NbdEndpointOptions } from './nbd-endpoint.js';
import { MAX_ZERO_REQUEST, type BlockDone, type BlockRequest, type BlockTarget } from './target.js';
import { STOP_GRACE_MS } from './transactions.js';
import { RequestMetrics } from '../metrics/request-metrics.js';
import type { MetricsSource, NodeMetricsView } from '../metrics/collect.js';

/** Injection points (tests); the engine passes none. */
export interface RemoteNodeDeps {
  /** TCP connector (default net.connect) */
  socketFactory?: SocketFactory;
  /** NBD endpoint starter (default startNbdEndpoint) */
  startEndpoint?: (opts: NbdEndpointOptions) => Promise<NbdEndpoint>;
}

export function createRemoteNode(node: RemoteEntry, ctx: NodeContext,
  deps: RemoteNodeDeps = {}): RemoteRuntime & BlockTarget {
  return new RemoteNode(node, ctx, deps);
}

class RemoteNode implements RemoteRuntime, BlockTarget, MetricsSource {
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

  /** the links to the exports, in leg order (a single node has one; `node leg add/del` replaces them) */
  private legs: Leg[];
  private readonly multi: boolean;
  /** multi-leg: the device once serving, the ports in front of the legs, the first HELLOs waiting for it */
  private readonly slot: DeviceSlot;
  private ports: LegPort[] = [];
  private pendingReady = new Map<number, { conn: Connection; sessionHex: string }>();
  private serving = false;
  /** multi-leg: a node-level failure (duplicate legs, the endpoint or the device could not start) */
  private failure: string | null = null;
  /** mirror: when it may assemble, with this start's one-shot options */
  private gate = new AssemblyGate();
  /** mirror: legs found written apart (nothing is served until `node resolve`) */
  private splitBrain: SplitBrain | null = null;
  /** a device is being built (maybeServe runs once at a time) */
  private assembling = false;
  /** multi-leg: each leg's state last reported (leg-state events are emitted on change) */
  private legsReported: LegState[];

  private endpoint: NbdEndpoint | null = null;
  private readonly waiters: StateWaiters<RemoteState>;
  /** what the NBD endpoint measures (BlockTarget.recorder): latency and errors per op */
  readonly recorder: RequestMetrics;

  constructor(private readonly node: RemoteEntry, private readonly ctx: NodeContext,
    private readonly deps: RemoteNodeDeps) {
    this.log = ctx.log.child({ node: node.config.name });
    this.multi = node.config.layout !== 'single';
    this.slot = new DeviceSlot(ctx.clock, STOP_GRACE_MS);
    this.legs = this.makeLegs();
    this.legsReported = this.legs.map(() => 'connecting');
    this.waiters = new StateWaiters(ctx.clock, () => this.state);
    this.recorder = new RequestMetrics(ctx.clock);
  }

  private get device(): Device | null { return this.slot.device; }

  /** the first leg: what a single node is */
  private get leg(): Leg { return this.legs[0]!; }

  /** One Leg per configured leg; a leg replaced by `node leg add/del` reports nothing more. */
  private makeLegs(): Leg[] {
    const config = (): RemoteConfig => this.node.config;
    const legs: Leg[] = config().legs.map((_, i) => new Leg({
      ...this.legBase(),
      log: this.multi ? this.log.child({ leg: i }) : this.log,
      remote: () => config().legs[i]!.remote,
      exportName: () => config().legs[i]!.export ?? '',
      sizeLimit: () => (this.multi ? null : config().size),
      emit: (event, fields) => { if (this.legs[i] === legs[i]) this.emit(event, this.multi ? { ...fields, leg: i } : fields); },
      phaseChanged: () => { if (this.legs[i] === legs[i]) this.legPhaseChanged(i); },
      firstHello: (conn, sessionHex) => { if (this.legs[i] === legs[i]) this.firstHello(i, conn, sessionHex); },
    }));
    return legs;
  }

  private legBase(): Pick<LegOptions, 'ctx' | 'policy' | 'crypto' | 'socketFactory'> {
    const sf = this.deps.socketFactory;
    return { ctx: this.ctx, policy: () => this.policy, crypto: () => this.node.config.crypto, ...(sf ? { socketFactory: sf } : {}) };
  }

  get name(): string { return this.node.config.name; }

  private get policy(): Policy { return this.node.config.policy; }

  // ---- state ----

  get state(): RemoteState {
    if (this.stopRequested) return 'stopping';
    if (!this.started) return 'configured';
    if (!this.multi) return this.leg.phase;
    if (this.failure !== null) return 'failed';
    if (this.slot.paused) return 'connecting';
    if (this.device) {
      const h = this.device.health();
      return h === 'ready' && this.serving ? 'ready' : h === 'failed' ? 'failed' : this.serving ? 'backoff' : 'connecting';
    }
    return this.legs.some((l) => l.phase === 'backoff' || l.phase === 'failed') ? 'backoff' : 'connecting';
  }

  get reason(): string | null {
    const s = this.state;
    if (s !== 'backoff' && s !== 'failed') return null;
    if (!this.multi) return this.leg.reason;
    return this.failure ?? (s === 'failed' ? 'legs-failed' : this.gate.waiting ? 'waiting-for-legs' : 'leg');
  }

  private legPhaseChanged(i: number): void {
    const leg = this.legs[i]!;
    if (this.multi && leg.phase === 'failed' && leg.reason === 'taken-over' && this.failure === null) {
      // a newer engine assembled this mirror: this one stops writing at once, its state untouched
      this.failMirror('taken-over', `leg ${i}: the export belongs to a newer assembly of the mirror (another engine); this one writes no more`);
      return;
    }
    if (this.device) this.device.legPhaseChanged(i);
    else if (this.multi && this.started) void this.maybeServe();
    this.sync();
    this.maybeCapacity();
  }

  /** Report a state change (event + waiters) if the visible state moved. */
  private sync(): void {
    if (this.multi) this.syncLegs();
    const to = this.state;
    const from = this.reported;
    if (to === from) return;
    this.reported = to;
    this.log.info(`state ${from} → ${to}${this.reason ? ` (${this.reason})` : ''}`, { op: 'state' });
    this.emit('state-changed', { from, to, reason: this.reason });
    if (to === 'ready' || to === 'failed' || to === 'configured') this.waiters.wake();
  }

  private emit(event: EventName, fields: EventFields = {}): void {
    try {
      this.ctx.events.emit(this.name, event, fields);
    } catch (err) {
      this.log.error(`event sink threw: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  // ---- lifecycle ----

  async start(opts: StartOptions = {}): Promise<void> {
    if (this.stopping) await this.stopping;
    if (this.started && this.state !== 'failed') {
      // idempotent; a mirror waiting for an away leg takes --degraded from a second start
      if (opts.degraded && this.gate.degrade()) void this.maybeServe();
      return;
    }
    if (this.started) await this.teardown(true); // failed → a fresh start
    this.generation++;
    this.started = true;
    this.failure = null;
    this.splitBrain = null;
    this.gate = new AssemblyGate(opts);
    // a mirror's first HELLOs carry no claim: this run's session is chosen once the legs are read
    for (const l of this.legs) l.setClaim(null);
    for (const l of this.legs) l.start();
  }

  async stop(opts: { force: boolean }): Promise<void> {
    if (this.stopping) {
      if (opts.force) for (const l of this.legs) l.table?.failAll('ESHUTDOWN', 'node stopped (forced)');
      return this.stopping;
    }
    if (!this.started) return;
    // a mirror's legs stay open until its device closed (its last, clean save goes to their metadata); past the grace its requests fail
    const mirror = this.node.config.layout === 'mirror';
    const tables = mirror ? [] : this.legs.flatMap((l) => (l.table ? [l.table] : []));
    this.stopRequested = true;
    this.sync(); // → stopping
    this.log.info(opts.force ? 'stopping (force)' : 'stopping: draining in-flight requests', { op: 'stop' });
    this.stopping = (async () => {
      try {
        await Promise.all(tables.map((t) => t.drain(opts.force ? 0 : STOP_GRACE_MS)));
        const grace = mirror ? this.ctx.clock.setTimer(opts.force ? 0 : STOP_GRACE_MS, () => { for (const l of this.legs) l.table?.failAll('ESHUTDOWN', 'node stopped: still in flight after the grace'); }) : null;
        await this.teardown(opts.force);
        grace?.cancel();
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
    const quietly = (what: string, closing: Promise<void>): Promise<void> => closing.catch((err: unknown) => {
      this.log.warn(`closing the ${what}: ${(err as Error)?.message ?? String(err)}`, { op: 'stop' });
    });
    const endpoint = this.endpoint;
    this.endpoint = null;
    if (endpoint) await quietly('NBD endpoint', endpoint.close({ force }));
    const device = this.slot.take();
    this.serving = false;
    this.pendingReady.clear();
    this.slot.resumed();
    if (device) await quietly(`${this.node.config.layout} device`, device.close());
    // after the device: a mirror's last save goes to the legs' metadata
    this.closeLegs(force);
  }

  private closeLegs(force: boolean): void {
    for (const l of this.legs) l.closeLink(force);
    for (const p of this.ports) p.close();
    this.ports = [];
    for (const l of this.legs) l.closeTable();
  }

  configChanged(): void {
    for (const l of this.legs) l.configChanged();
    this.device?.policyChanged();
    this.maybeCapacity();
  }

  /** node verify: one pass of the mirror's verify */
  async verify(o: VerifyOptions): Promise<VerifyReport> {
    const verify = this.device?.verify?.bind(this.device);
    checkVerify(this.node.config, o, verify !== undefined, this.stateText());
    return verify!(o);
  }

  /** node resolve: the split brain ends with leg `keep` as the survivor (a restart that assembles around it) */
  async resolve(keep: number): Promise<void> {
    checkResolve(this.node.config, this.splitBrain !== null, keep, this.stateText());
    this.log.warn(`split brain resolved by the operator: leg ${keep} is kept, the other legs copy what differs from it`, { op: 'node resolve' });
    await this.stop({ force: true });
    await this.start({ keep });
  }

  /** node leg add/del: a leg appended to or removed from the running mirror */
  editLegs(edit: LegEdit, commit: (legs: LegConfig[]) => Promise<void>): Promise<void> {
    return editLegs(this.editHost(), edit, commit);
  }

  private editHost(): LegEditHost {
    return {
      name: this.name, log: this.log, ctx: this.ctx,
      config: () => this.node.config, policy: () => this.policy, legs: () => this.legs, device: () => this.device,
      splitBrain: () => this.splitBrain !== null, legBase: () => this.legBase(), failure: () => this.failure,
      pause: () => this.slot.pause(this.name, () => this.sync()), gate: () => this.gate, fail: (reason, detail) => this.failNode(reason, detail),
      rebuild: (commit, gate) => this.rebuild(commit, gate),
    };
  }

  /** After a pause: the old legs go (nothing in flight on them), `commit` installs the config, its legs assemble. */
  private async rebuild(commit: () => Promise<void>, gate = new AssemblyGate()): Promise<void> {
    this.closeLegs(false);
    try {
      await commit();
    } catch (err) {
      this.log.error(`the config change could not be saved: ${(err as Error)?.message ?? String(err)}; the legs stay as they were`, { op: 'node leg' });
    }
    this.generation++;
    this.legs = this.makeLegs();
    this.legsReported = this.legs.map(() => 'connecting');
    this.serving = false;
    this.pendingReady.clear();
    this.gate = gate;
    const resumed = this.slot.waitResumed();
    for (const l of this.legs) l.start();
    await resumed;
  }

  /** "state backoff, reason leg" for messages */
  private stateText(): string { return `state ${this.state}${this.reason ? `, reason ${this.reason}` : ''}`; }

  reconnect(): void {
    if (!this.started || this.state === 'failed') return this.log.info(`reconnect ignored in state ${this.state}`, { op: 'reconnect' });
    this.log.info('reconnect requested', { op: 'reconnect' });
    for (const l of this.legs) if (l.phase !== 'failed') l.reconnect();
  }

  waitReady(ms: number): Promise<RemoteState> {
    const s = this.state;
    return s === 'ready' || s === 'failed' || ms <= 0 ? Promise.resolve(s) : this.waiters.wait(ms);
  }

  private firstHello(i: number, conn: Connection, sessionHex: string): void {
    if (!this.multi) {
      void this.startEndpoint(() => this.leg.becomeReady(conn, sessionHex));
      return;
    }
    const leg = this.legs[i]!;
    const twin = sameExportAs(this.legs, leg);
    if (twin >= 0) {
      const [a, b] = twin < i ? [twin, i] : [i, twin];
      const legs = this.node.config.legs;
      this.failNode('duplicate-leg', `leg ${a} (${legs[a]!.remote}) and leg ${b} (${legs[b]!.remote}) are the same export (identity ${leg.identity!.toString('hex')})`);
      return;
    }
    // a mirror reads the legs' metadata before it serves: its legs carry I/O from the first HELLO
    if (this.serving || this.node.config.layout === 'mirror') {
      leg.becomeReady(conn, sessionHex);
      return;
    }
    this.pendingReady.set(i, { conn, sessionHex });
    void this.maybeServe();
  }

  /** A node-level failure of a multi-leg node: every leg stops, queued I/O fails with EIO. */
  private failNode(reason: string, detail: string): void {
    this.log.error(`failed (${reason}): ${detail}`, { op: 'start', errno: 'EIO' });
    this.failure = reason;
    this.emit('txn-failed', { reason, message: detail });
    for (const l of this.legs) if (l.phase !== 'failed') l.fail(reason, detail);
    this.slot.resumed();
    this.sync();
  }

  /** Mirror: legs written apart. Nothing is served (the device is closed, its state saved) until `node resolve`. */
  private onSplitBrain(s: SplitBrain): void {
    if (this.splitBrain) return;
    this.splitBrain = s;
    this.emit('split-brain', { legs: s.legs, generations: s.generations, message: s.message });
    this.failMirror('split-brain', s.message);
  }

  /** The mirror must not serve (split brain, taken over): the device closes (its state saved as it is), then the legs fail. */
  private failMirror(reason: string, detail: string): void {
    this.failure = reason;
    const device = this.device;
    void (device ? device.close() : Promise.resolve()).catch(() => {}).finally(() => this.failNode(reason, detail));
  }

  /** Multi-leg: start serving once the legs' sizes are known. */
  private async maybeServe(): Promise<void> {
    if (this.device || this.failure !== null || this.serving || !this.started) return;
    const cfg = this.node.config;
    const known = this.legs.map((l) => l.sizeBytes);
    const mirror = cfg.layout === 'mirror';
    // a mirror may start with the legs it reaches (a leg still away is behind); linear and stripe need every leg's size
    const settled = mirror
      ? this.legs.every((l) => l.sizeBytes !== null || l.phase === 'backoff' || l.phase === 'failed') && known.some((k) => k !== null)
      : known.every((k) => k !== null);
    if (!settled || this.assembling) return;
    const gen = this.generation;
    this.assembling = true;
    try {
      if (mirror && !(await this.mayAssemble())) return;
      await this.buildDevice(gen);
    } finally {
      this.assembling = false;
    }
  }

  /** Mirror: the gate decides; a start or stop meanwhile drops the answer. */
  private async mayAssemble(): Promise<boolean> {
    const gen = this.generation;
    const ok = await this.gate.mayAssemble(this.legs, this.ctx.stateDir, this.name, this.log);
    if (gen !== this.generation) return false;
    if (!ok) this.sync();
    return ok;
  }

  private async buildDevice(gen: number): Promise<void> {
    const cfg = this.node.config;
    this.ports = this.legs.map((l, i) => new LegPort(i, l, () => this.policy.maxInflight * 2));
    let device: Device;
    try {
      const opened = await openDevice({
        cfg, ports: this.ports, ctx: this.ctx, log: this.log, policy: () => this.policy, emit: (event, fields) => this.emit(event, fields),
        changed: () => { this.sync(); this.maybeCapacity(); }, assemble: this.gate.opts, splitBrain: (sb) => this.onSplitBrain(sb),
      });
      if (opened.kind !== 'device') {
        if (gen !== this.generation) return;
        if (opened.kind === 'split-brain') this.onSplitBrain(opened);
        else void reorderLegs(this.editHost(), opened, this.node.saveLegs);
        return;
      }
      device = opened.device;
    } catch (err) {
      if (gen !== this.generation) return;
      this.failNode('device', `cannot build the ${cfg.layout} device: ${(err as Error)?.message ?? String(err)}`);
      return;
    }
    if (gen !== this.generation) {
      await device.close();
      return;
    }
    this.slot.install(device);
    await this.startEndpoint(() => {
      this.serving = true;
      this.slot.resumed();
      for (const [i, p] of this.pendingReady) this.legs[i]!.becomeReady(p.conn, p.sessionHex);
      this.pendingReady.clear();
      this.sync();
    });
  }

  private async startEndpoint(listening: () => void): Promise<void> {
    if (this.endpoint) {
      listening(); // a device rebuilt after node leg add/del: the endpoint kept its clients
      return;
    }
    const gen = this.generation;
    const cfg = this.node.config;
    let tcp: { host: string; port: number } | null = null;
    try {
      tcp = cfg.nbdListen ? parseHostPort(cfg.nbdListen, 'NBD listen address') : null;
      const ep = await (this.deps.startEndpoint ?? startNbdEndpoint)({
        target: this, socketPath: nbdSocketPath(this.ctx.runtimeDir, cfg.name), tcp, log: this.log, clock: this.ctx.clock, addrCaps: () => this.policy,
      });
      if (gen !== this.generation) {
        await ep.close({ force: true });
        return;
      }
      this.endpoint = ep;
      listening();
    } catch (err) {
      if (gen !== this.generation) return;
      const detail = `cannot serve NBD: ${(err as Error)?.message ?? String(err)}`;
      if (this.multi) this.failNode('nbd-endpoint', detail);
      else this.leg.fail('nbd-endpoint', detail);
    }
  }

  // ---- BlockTarget ----

  size(): number { return this.multi ? this.slot.size() : this.leg.sizeBytes ?? 0; }

  permissions(): 'r' | 'w' | 'rw' { return permissionsOf(this.legs); }

  maxRequest(): number { return this.multi ? this.slot.maxRequest() : this.leg.maxRequest(); }

  maxZeroRequest(): number { return this.multi ? this.slot.maxZeroRequest() : MAX_ZERO_REQUEST; }

  fastZero(): boolean { return this.multi ? this.slot.fastZero() : this.leg.fastZero(); }

  private accepting(): boolean {
    if (!this.started || this.stopRequested) return false;
    if (this.multi) return this.slot.live && this.state !== 'failed';
    return this.leg.phase !== 'failed' && this.leg.table !== null;
  }

  hasCapacity(): boolean {
    // When not accepting, requests are refused at once without a slot, so never block the reader.
    if (!this.accepting()) return true;
    return this.multi ? this.slot.hasCapacity() : this.leg.hasCapacity();
  }

  onCapacity(listener: () => void): () => void {
    return this.multi ? this.slot.onCapacity(listener) : this.leg.onCapacity(listener);
  }

  private maybeCapacity(): void {
    if (!this.accepting()) return;
    if (this.multi) this.slot.capacity();
    else if (this.leg.hasCapacity()) this.leg.capacityReturned();
  }

  submit(req: BlockRequest, done: BlockDone): void {
    if (!this.accepting()) {
      const errno = this.started && this.state === 'failed' && !this.stopRequested ? 'EIO' : 'ESHUTDOWN';
      this.log.debug(`${req.op} refused in state ${this.state}: ${errno}`, { op: req.op, errno });
      queueMicrotask(() => done(errno, null));
      return;
    }
    if (this.multi) {
      this.slot.submit(req, done, this.policy.maxInflight);
      return;
    }
    if (!this.leg.hasCapacity()) throw new DstError('DST_ERR_BUSY', `${req.op}: transaction pool full`, { errno: 'EAGAIN' });
    this.leg.submit(req, done);
  }

  // ---- show ----

  show(): RuntimeShow {
    const legStats = this.legs.map((l) => l.stats());
    const base = { state: this.state, reason: this.reason, nbd: endpointShow(this.endpoint), sessionId: this.leg.sessionId?.toString('hex') ?? null,
      latency: this.recorder.show() };
    if (!this.multi) return { ...base, size: this.leg.sizeBytes, listen: null, permissions: this.leg.perms, stats: legStats[0]! };
    const d = this.device;
    return {
      ...base, size: d?.size ?? null, listen: null, permissions: this.legs.some((l) => l.perms !== null) ? this.permissions() : null,
      stats: sumStats(legStats, d?.inflight() ?? 0, this.recorder), degraded: d?.degraded() ?? null, verify: d?.verifyShow?.() ?? null,
      legs: legShows(this.legs, this.node.config, this.ports, d, (i) => this.legState(i), legStats),
      splitBrain: this.splitBrain ? { legs: this.splitBrain.legs, generations: this.splitBrain.generations } : null, uuid: d?.lineage?.()?.uuid.toString('hex') ?? null,
    };
  }

  /** for the metrics endpoint: the request histograms (per leg too) and the NBD clients */
  metrics(): NodeMetricsView {
    return { requests: this.recorder, legs: this.ports.map((p) => ({ index: p.index, metrics: p.metrics })), nbdConnections: this.endpoint?.connections ?? 0 };
  }

  private legState(i: number): LegState { return legStateOf(this.device, this.legs[i]!, i); }

  /** multi-leg: emit leg-state for every leg whose state moved since the last report */
  private syncLegs(): void {
    reportLegStates(this.legs, this.legsReported, (i) => (this.started ? this.legState(i) : 'connecting'), this.device, (f) => this.emit('leg-state', f));
  }
}
