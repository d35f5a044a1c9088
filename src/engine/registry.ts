// The node registry: the node map and the nodes' lifecycle, each node an immutable config (replaced
// on every change, per node one at a time, through the config gate) next to its live runtime. A
// refused command changes nothing; errors name the operation and the node. Beside it: node-checks.ts
// (one config alone), node-probes.ts (disk, port, clashes), node-edits.ts, node-states.ts, node-show.ts.
import { availableParallelism } from 'node:os';
import { DstError, errnoOf } from '../util/errors.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import type { Logger } from '../util/log.js';
import { DIRECT_GATE, type ChangeGate } from './config-store.js';
import { POLICY_TABLE } from './policy.js';
import { removeMirrorState } from './layout/region-state.js';
import { AttachManager, type AttachManagerOptions, type AttachMethodArg, type DetachResult } from './attach/manager.js';
import { canonicalAddr, cryptoShow } from './validate.js';
import { checkAclEntries, checkAclEntry, checkCrypto, checkName, checkNodeConfig, wrapError } from './node-checks.js';
import { isUnkeyedDigest } from '../protocol/suite-names.js';
import { checkDiskClash, checkListenClash, createDisk, probeDisk, probeListen } from './node-probes.js';
import { isStopped, notReadyError, requireConfigured, requireDetached, requireNotStopping, requireState } from './node-states.js';
import { aclCopy, clearedCrypto, configOfAdd, deepFreeze, policyPatch, withAclEntries, withBoundPort, withCrypto, withoutAclEntry, withPolicy, withReplaced } from './node-edits.js';
import { attachView, nodeShow, statusShow } from './node-show.js';
import type {
  AclEntry, AttachmentShow, CryptoSetArgs, CryptoShow, EventSink, ExportConfig, LegEdit, NodeAddArgs, NodeConfig, NodeContext,
  NodeRuntime, NodeShow, NodeState, Policy, RemoteConfig, RemoteEntry, RemoteRuntime, Role, StartOptions, StatusShow, EngineStatusKeys,
} from './types.js';

export type ExportFactory = (node: { readonly config: ExportConfig }, ctx: NodeContext) => NodeRuntime;
export type RemoteFactory = (node: RemoteEntry, ctx: NodeContext) => RemoteRuntime;

/** What every node gets (NodeContext; each node logs through a child of `log`) plus how to build runtimes. */
export interface RegistryOptions extends NodeContext {
  createExport: ExportFactory;
  createRemote: RemoteFactory;
  /** default crypto threads (default: available cores) */
  cores?: number;
  /** for `status` */
  version?: string;
  socket?: string;
  /** attachment manager overrides (tests: a fake System, poll interval, ...) */
  attach?: Partial<Pick<AttachManagerOptions, 'sys' | 'pollMs' | 'stepTimeoutMs' | 'settleTimeoutMs' | 'umountTimeoutMs' | 'methods'>>;
}

interface Entry {
  config: NodeConfig;
  runtime: NodeRuntime;
  /** the operator's intent (node start/stop, or autostart as loaded): saved as autostart */
  wanted: boolean;
  /** the disk's size when last checked (exports) */
  diskSize: number | null;
}

export class Registry {
  private readonly nodes = new Map<string, Entry>();
  /** names being added (add/load in progress) with their configs: reserved */
  private readonly pending = new Map<string, NodeConfig>();
  private readonly locks = new KeyedMutex();
  private readonly startedAt: number;
  readonly cores: number;
  /** local block devices of remote nodes (dst attach / detach, DESIGN §10) */
  readonly attachments: AttachManager;
  /** how changes reach the config file (the engine's ConfigStore; direct without one) */
  private gate: ChangeGate = DIRECT_GATE;

  constructor(private readonly opts: RegistryOptions) {
    this.cores = opts.cores ?? availableParallelism();
    this.startedAt = opts.clock.now();
    this.attachments = new AttachManager({
      ...opts.attach,
      stateDir: opts.stateDir, runtimeDir: opts.runtimeDir, log: opts.log, events: opts.events, clock: opts.clock,
      node: (name) => {
        const e = this.nodes.get(name);
        return e ? attachView(e.config, e.runtime) : null;
      },
    });
  }

  private get log(): Logger {
    return this.opts.log;
  }

  /** Route every change through `gate` (autosave: the engine's config file). */
  persistWith(gate: ChangeGate): void {
    this.gate = gate;
  }

  // ---- lookup ----

  has(name: string): boolean {
    return this.nodes.has(name);
  }

  names(): string[] {
    return [...this.nodes.keys()];
  }

  /** The current config of a node (immutable). */
  config(name: string): NodeConfig {
    return this.entry(name, 'node show').config;
  }

  runtime(name: string): NodeRuntime {
    return this.entry(name, 'node show').runtime;
  }

  /** The node named `name`; with `role`, refused unless of that role (`what` says what applies to it). */
  private entry(name: unknown, where: string, role?: Role, what?: string): Entry {
    const e = typeof name === 'string' ? this.nodes.get(name) : undefined;
    if (!e) {
      throw new DstError('DST_ERR_NOT_FOUND', `${where}: no node named ${JSON.stringify(name)} (see dst node list)`, { errno: 'ENOENT' });
    }
    if (role !== undefined && e.config.role !== role) {
      throw new DstError('DST_ERR_INVALID', `${where}: ${e.config.name} is ${role === 'export' ? 'a remote' : 'an export'} node; ${what} to ${role} nodes`);
    }
    return e;
  }

  /** Refuse `cmd` unless the node's state is one of `states` (from the control table). */
  checkState(cmd: string, name: string, states: readonly NodeState[]): void {
    requireState(cmd, name, this.entry(name, `${cmd.replace(/-/g, ' ')} ${name}`).runtime.state, states);
  }

  // ---- show ----

  private buildShow(e: Entry): NodeShow {
    const c = e.config;
    return nodeShow({ config: c, runtime: e.runtime, diskSize: e.diskSize, cores: this.cores,
      attachment: c.role === 'export' ? null : this.attachments.show(c.name) });
  }

  show(name: string): NodeShow {
    return this.buildShow(this.entry(name, 'node show'));
  }

  list(): NodeShow[] {
    return [...this.nodes.values()].map((e) => this.buildShow(e));
  }

  /** Largest `threads` of any node (default cores). */
  cryptoThreads(): number {
    let n = 0;
    for (const e of this.nodes.values()) n = Math.max(n, e.config.crypto.threads ?? this.cores);
    return n || this.cores;
  }

  status(extra: { socket?: string; version?: string } = {}): Omit<StatusShow, EngineStatusKeys> {
    return statusShow({
      version: extra.version ?? this.opts.version ?? '0.0.0',
      uptimeMs: this.opts.clock.now() - this.startedAt,
      socket: extra.socket ?? this.opts.socket ?? '',
      stateDir: this.opts.stateDir, limits: this.opts.limits, cryptoThreads: this.cryptoThreads(),
      nodes: [...this.nodes.values()].map((e) => ({ name: e.config.name, role: e.config.role, state: e.runtime.state, attachment: this.attachments.show(e.config.name) })),
    });
  }

  /** What runs now, autostart = the operator's intent (for config show/save). */
  snapshot(): NodeConfig[] {
    return [...this.nodes.values()].map((e) => ({ ...e.config, autostart: e.wanted }) as NodeConfig);
  }

  /** snapshot() as it will be once `changed` configs replace (or join) the nodes of their names. */
  private snapshotWith(...changed: NodeConfig[]): NodeConfig[] {
    return withReplaced(this.snapshot(), changed);
  }

  // ---- add / load ----

  private reserve(names: string[], where: string): void {
    const seen = new Set<string>();
    for (const n of names) {
      if (seen.has(n)) throw new DstError('DST_ERR_EXISTS', `${where}: node ${n} appears twice`, { errno: 'EEXIST' });
      seen.add(n);
      if (this.nodes.has(n) || this.pending.has(n)) {
        throw new DstError('DST_ERR_EXISTS', `${where}: a node named ${n} already exists`, { errno: 'EEXIST' });
      }
    }
  }

  /** The export nodes other than `c`: stored, being added, and the rest of a config batch. */
  private otherExports(c: ExportConfig, batch: NodeConfig[]): ExportConfig[] {
    const all = [...[...this.nodes.values()].map((e) => e.config), ...this.pending.values(), ...batch];
    return all.filter((o): o is ExportConfig => o !== c && o.name !== c.name && o.role === 'export');
  }

  /**
   * Check a config fully before anything changes: on its own (node-checks.ts), then an export's
   * disk, its port against the other nodes and the host, and its disk against the other exports.
   * Returns an export's disk size.
   */
  private async validateConfig(c: NodeConfig, where: string, create: number | null, batch: NodeConfig[]): Promise<number | null> {
    const log = this.log.child({ node: c.name });
    const hp = await checkNodeConfig(c, where, create, this.opts.limits, log);
    if (c.role !== 'export' || hp === null) return null;
    const { diskSize } = await probeDisk(c, where, create, this.log);
    checkListenClash(c, this.otherExports(c, batch), where);
    await probeListen(c, hp, where, this.log);
    await checkDiskClash(c, this.otherExports(c, batch), where);
    return diskSize;
  }

  private commit(c: NodeConfig, diskSize: number | null, wanted: boolean): Entry {
    const frozen = deepFreeze({ ...c, autostart: wanted } as NodeConfig);
    if (c.crypto.threads !== null) this.opts.cryptoPool.ensure(c.crypto.threads);
    const entry = { config: frozen, wanted, diskSize } as Entry;
    const log = this.opts.log.child({ node: c.name });
    // State changes also reach the attachment manager: a node that fails breaks its attachment.
    const events: EventSink = {
      emit: (node, event, fields) => {
        this.opts.events.emit(node, event, fields);
        if (event === 'state-changed' && fields?.to) this.attachments.nodeState(node, fields.to as NodeState, fields.reason ?? null);
      },
    };
    const ctx: NodeContext = {
      clock: this.opts.clock, log, events, runtimeDir: this.opts.runtimeDir,
      stateDir: this.opts.stateDir, limits: this.opts.limits, cryptoPool: this.opts.cryptoPool,
    };
    entry.runtime = frozen.role === 'export'
      ? this.opts.createExport({ get config() { return entry.config as ExportConfig; } }, ctx)
      : this.opts.createRemote({ get config() { return entry.config as RemoteConfig; },
        saveLegs: (legs) => this.replace(entry, { ...entry.config, legs } as RemoteConfig, `node start ${c.name}`, 'grant') }, ctx);
    this.nodes.set(c.name, entry);
    this.opts.events.emit(c.name, 'node-added');
    log.info(`added ${c.role} node`, { op: 'node add' });
    return entry;
  }

  /** Add `configs` all or nothing: names reserved while each is checked (errors name `whereOf` it; `create`: the
   * disk size `node add --create` makes), then `apply` runs inside one granted change with the disk sizes found. */
  private async adding<T>(configs: NodeConfig[], where: string, whereOf: (c: NodeConfig) => string, create: number | null,
    apply: (sizes: (number | null)[]) => Promise<T>): Promise<T> {
    const names = configs.map((c) => c.name);
    this.reserve(names, where);
    for (const c of configs) this.pending.set(c.name, c);
    try {
      const sizes: (number | null)[] = [];
      for (const c of configs) sizes.push(await this.validateConfig(c, whereOf(c), create, configs));
      // after the async checks: a listen clash may have appeared meanwhile
      for (const c of configs) if (c.role === 'export') checkListenClash(c, this.otherExports(c, []), whereOf(c));
      return await this.gate.grant(where, () => this.snapshotWith(...configs), () => apply(sizes));
    } finally {
      for (const n of names) this.pending.delete(n);
    }
  }

  /** node add: validate meaning, create the disk if asked (last), store. Does not serve. */
  async add(args: NodeAddArgs): Promise<NodeShow> {
    const name = args?.name;
    const where = `node add ${typeof name === 'string' ? name : JSON.stringify(name)}`;
    checkName(name, where);
    const cfg = configOfAdd(args, where);
    const create = cfg.role === 'export' ? (args.create ?? null) : null;
    const e = await this.adding([cfg], where, () => where, create, async ([diskSize]) => {
      if (cfg.role === 'export' && create !== null) await createDisk(name, cfg.disk, create, where, this.log);
      return this.commit(cfg, diskSize!, false);
    });
    return this.buildShow(e);
  }

  /**
   * config load: all-or-nothing. Refuses names that already exist (or repeat), validates every
   * node, then adds them all, autostart as the file says; those are started (without waiting)
   * when `start`.
   */
  async load(configs: NodeConfig[], where: string, opts: { start: boolean }): Promise<string[]> {
    const names = configs.map((c) => c.name);
    // started inside the change, so the ports they bind are saved with it
    await this.adding(configs, where, (c) => `${where}: node ${c.name}`, null, async (sizes) => {
      configs.forEach((c, i) => this.commit(c, sizes[i]!, c.autostart));
      if (opts.start) await this.startWanted(names);
    });
    return names;
  }

  /**
   * Start the nodes among `names` the operator wants running (engine start, config load), not
   * waiting for remotes. A failure is logged and changes no intent: the next engine start tries again.
   */
  async startWanted(names: readonly string[]): Promise<void> {
    for (const name of names) {
      const e = this.nodes.get(name);
      if (!e?.wanted) continue;
      try {
        await this.startNode(e, `node start ${name}`);
      } catch (err) {
        this.log.error(`autostart failed: ${(err as Error).message}`, { node: name, op: 'node start', errno: errnoOf(err) });
      }
    }
  }

  // ---- lifecycle ----

  private setWanted(e: Entry, wanted: boolean): void {
    e.wanted = wanted;
    if (e.config.autostart !== wanted) e.config = deepFreeze({ ...e.config, autostart: wanted } as NodeConfig);
  }

  /**
   * Start a node's runtime and record the intent. An export asked for port 0 keeps the port it
   * bound, so its remotes find it again after a restart.
   */
  private async startNode(e: Entry, where: string, opts: StartOptions = {}): Promise<void> {
    const name = e.config.name;
    const before = e.runtime.state;
    try {
      if (e.config.role === 'export') await checkDiskClash(e.config, this.otherExports(e.config, []), where);
      await e.runtime.start(opts);
    } catch (err) {
      this.log.error(`start failed: ${(err as Error).message}`, { node: name, op: 'node start', errno: errnoOf(err) });
      throw wrapError(err, where);
    }
    if (this.nodes.get(name) !== e) return;
    this.setWanted(e, true);
    const pinned = withBoundPort(e.config, e.runtime.show().listen);
    if (pinned !== e.config) e.config = deepFreeze(pinned);
    if (isStopped(before)) {
      this.opts.events.emit(name, 'node-started');
      this.log.info('started', { node: name, op: 'node start' });
    }
  }

  /**
   * node start: idempotent; saved as autostart before it starts (a remote that keeps trying
   * counts as started). A remote waits up to waitMs for ready (0 = no wait).
   */
  async start(name: string, waitMs: number, opts: StartOptions = {}): Promise<NodeShow> {
    const where = `node start ${name}`;
    const e = this.entry(name, where);
    requireNotStopping(where, e.runtime.state);
    if (e.config.role === 'export' && e.config.acl.length === 0) {
      this.log.warn(`export ${name} has an empty ACL: nobody may connect; add an entry with: dst security add ${name} --addr IP[/PREFIX] --perm rw`,
        { node: name, op: 'node start' });
    }
    await this.gate.grant(where, () => this.snapshotWith({ ...e.config, autostart: true } as NodeConfig), () => this.startNode(e, where, opts));
    if (this.nodes.get(name) !== e) return this.buildShow(e);
    if (e.config.role === 'remote' && waitMs > 0) {
      const rt = e.runtime as RemoteRuntime;
      const st = await rt.waitReady(waitMs);
      if (st !== 'ready') throw notReadyError(where, name, st, rt.reason, waitMs, this.buildShow(e).splitBrain);
    }
    return this.buildShow(e);
  }

  /** node stop: drain (force: fail in-flight at once). Idempotent. */
  async stop(name: string, force: boolean): Promise<NodeShow> {
    const where = `node stop ${name}`;
    const e = this.entry(name, where);
    await this.gate.revoke(where, async () => {
      const before = e.runtime.state;
      // An attached node: refused while its device is mounted (unless force), else detached first.
      await this.attachments.beforeStop(name, force === true, where);
      this.setWanted(e, false);
      try {
        await e.runtime.stop({ force: force === true });
      } catch (err) {
        this.log.error(`stop failed: ${(err as Error).message}`, { node: name, op: 'node stop', errno: errnoOf(err) });
        throw wrapError(err, where);
      }
      if (before !== 'configured') {
        this.opts.events.emit(name, 'node-stopped');
        this.log.info(force ? 'stopped (forced)' : 'stopped', { node: name, op: 'node stop' });
      }
    });
    return this.buildShow(e);
  }

  /** node del: only a configured (not serving) node. */
  async del(name: string): Promise<{ name: string }> {
    const where = `node del ${name}`;
    this.entry(name, where);
    await this.gate.revoke(where, async () => {
      const e = this.entry(name, where);
      requireConfigured(where, name, e.runtime.state);
      requireDetached(where, name, this.attachments.show(name));
      this.nodes.delete(name);
      this.opts.events.emit(name, 'node-removed');
      this.log.info('removed', { node: name, op: 'node del' });
    });
    await removeMirrorState(this.opts.stateDir, name, this.log);
    return { name };
  }

  /** node reconnect: remote only; crypto changes apply. */
  reconnect(name: string): NodeShow {
    const e = this.entry(name, `node reconnect ${name}`, 'remote', 'reconnect applies');
    (e.runtime as RemoteRuntime).reconnect();
    this.log.info('reconnect requested', { node: name, op: 'node reconnect' });
    return this.buildShow(e);
  }

  /** A remote node's runtime, for the mirror commands (node verify, node resolve) that are its own. */
  remoteRuntime(name: string, cmd: string): RemoteRuntime {
    return this.entry(name, `${cmd} ${name}`, 'remote', `${cmd.replace('node ', '')} applies`).runtime as RemoteRuntime;
  }

  /** node leg add/del: the running mirror changes its legs; the new legs are saved through the gate */
  async editLegs(name: string, edit: LegEdit): Promise<NodeShow> {
    const where = `node leg ${edit.op} ${name}`;
    const rt = this.remoteRuntime(name, `node leg ${edit.op}`);
    return this.locks.run(name, async () => {
      const e = this.entry(name, where);
      await rt.editLegs(edit, (legs) => this.replace(e, { ...e.config, legs } as RemoteConfig, where, 'grant'));
      return this.buildShow(e);
    });
  }

  /** Stop every running node (engine shutdown), in parallel. Errors are logged. */
  async stopAll(force: boolean): Promise<void> {
    // Attachments first, while their nodes still serve: unmount (flushing through the node), detach.
    await this.attachments.detachAll();
    await Promise.all([...this.nodes.values()].map(async (e) => {
      if (e.runtime.state === 'configured') return;
      const name = e.config.name;
      try {
        await e.runtime.stop({ force });
        this.opts.events.emit(name, 'node-stopped');
        this.log.info('stopped for shutdown', { node: name, op: 'shutdown' });
      } catch (err) {
        this.log.error(`stop failed: ${(err as Error).message}`, { node: name, op: 'shutdown', errno: errnoOf(err) });
      }
    }));
  }

  /** dst attach: a ready remote node as a local block device. */
  async attach(name: string, method: AttachMethodArg): Promise<AttachmentShow> {
    this.entry(name, `attach ${name}`);
    return this.attachments.attach(name, method);
  }

  /** dst detach: refused while mounted unless force. */
  async detach(name: string, force: boolean): Promise<DetachResult> {
    this.entry(name, `detach ${name}`);
    return this.attachments.detach(name, force);
  }

  // ---- config changes (any state) ----

  /**
   * Replace a node's config through the gate: a grant is saved first, a revocation applied first
   * (`where` names the command in errors, `op` in logs).
   */
  private async replace(e: Entry, c: NodeConfig, where: string, kind: 'grant' | 'revoke'): Promise<void> {
    // autostart and a pinned port belong to start/stop, which may have run while this change waited
    const next = (): NodeConfig => ({ ...c, autostart: e.config.autostart, ...(e.config.role === 'export' ? { listen: e.config.listen } : {}) }) as NodeConfig;
    const apply = async (): Promise<void> => {
      e.config = deepFreeze(next());
      try {
        e.runtime.configChanged();
      } catch (err) {
        this.log.error(`applying the change failed: ${(err as Error).message}`, { node: c.name, op: where.slice(0, where.lastIndexOf(' ')), errno: errnoOf(err) });
      }
    };
    if (kind === 'grant') await this.gate.grant(where, () => this.snapshotWith(next()), apply);
    else await this.gate.revoke(where, apply);
  }

  /** node set: policy, checked and applied at once. */
  async set(name: string, patch: Partial<Policy>): Promise<NodeShow> {
    const where = `node set ${name}`;
    this.entry(name, where);
    const clean = policyPatch(patch);
    return this.locks.run(name, async () => {
      const e = this.entry(name, where);
      await this.replace(e, withPolicy(e.config, clean, this.opts.limits, where), where, 'grant');
      this.log.info(`policy set: ${POLICY_TABLE.filter((k) => clean[k.field] !== undefined).map((k) => k.key).join(', ') || 'nothing'}`, { node: name, op: 'node set' });
      return this.buildShow(e);
    });
  }

  private exportEntry(name: string, where: string): Entry & { config: ExportConfig } {
    return this.entry(name, where, 'export', 'ACLs apply') as Entry & { config: ExportConfig };
  }

  /** security add: add an entry, or replace the one for the same address. */
  async securityAdd(name: string, addr: string, perm: string, keyFile: string | null): Promise<AclEntry[]> {
    const where = `security add ${name}`;
    this.exportEntry(name, where);
    const entry = await checkAclEntry({ addr, perm, keyFile }, where, this.log.child({ node: name }));
    return this.locks.run(name, async () => {
      const e = this.exportEntry(name, where);
      const replaced = e.config.acl.some((a) => a.addr === entry.addr);
      await this.replace(e, withAclEntries(e.config, [entry]), where, 'grant');
      this.log.info(`ACL ${replaced ? 'replaced' : 'added'} ${entry.addr} ${entry.perm}${entry.keyFile ? ' with key file ' + entry.keyFile : ''}`, { node: name, op: 'security add' });
      return aclCopy(e.config.acl);
    });
  }

  async securityDel(name: string, addr: string): Promise<AclEntry[]> {
    const where = `security del ${name}`;
    this.exportEntry(name, where);
    const canon = canonicalAddr(addr, where);
    return this.locks.run(name, async () => {
      const e = this.exportEntry(name, where);
      await this.replace(e, withoutAclEntry(e.config, canon, where), where, 'revoke');
      this.log.info(`ACL removed ${canon}`, { node: name, op: 'security del' });
      return aclCopy(e.config.acl);
    });
  }

  securityList(name: string): AclEntry[] {
    return aclCopy(this.exportEntry(name, `security list ${name}`).config.acl);
  }

  /** security load: all entries at once (same address → replaced), all-or-nothing. */
  async securityLoad(name: string, entries: { addr: unknown; perm: unknown; keyFile?: unknown }[]): Promise<AclEntry[]> {
    const where = `security load ${name}`;
    this.exportEntry(name, where);
    const parsed = await checkAclEntries(entries, where, this.log.child({ node: name }));
    return this.locks.run(name, async () => {
      const e = this.exportEntry(name, where);
      await this.replace(e, withAclEntries(e.config, parsed), where, 'grant');
      this.log.info(`ACL loaded ${parsed.length} entries`, { node: name, op: 'security load' });
      return aclCopy(e.config.acl);
    });
  }

  // ---- crypto ----

  /** crypto set: merge the given fields into the node's crypto, check the combination and key files. */
  async cryptoSet(args: CryptoSetArgs): Promise<CryptoShow> {
    const name = args?.name;
    const where = `crypto set ${name}`;
    this.entry(name, where);
    return this.locks.run(name, async () => {
      const e = this.entry(name, where);
      const { crypto: next, suite } = withCrypto(e.config.crypto, args, where);
      await checkCrypto(next, where, this.log.child({ node: name }));
      if (isUnkeyedDigest(suite)) {
        this.log.warn(`suite ${suite} only detects accidents: it authenticates nothing; use a hash key file for none+hmac-${next.hash}`, { node: name, op: 'crypto set' });
      }
      await this.replace(e, { ...e.config, crypto: next }, where, 'grant');
      this.opts.cryptoPool.ensure(this.cryptoThreads());
      this.log.info(`crypto set: suite ${suite}, applies at the next handshake`, { node: name, op: 'crypto set' });
      return cryptoShow(next, this.cores);
    });
  }

  cryptoShow(name: string): CryptoShow {
    return cryptoShow(this.entry(name, `crypto show ${name}`).config.crypto, this.cores);
  }

  /** crypto clear: back to no cipher, no hash (threads kept). */
  async cryptoClear(name: string): Promise<CryptoShow> {
    const where = `crypto clear ${name}`;
    this.entry(name, where);
    return this.locks.run(name, async () => {
      const e = this.entry(name, where);
      const next = clearedCrypto(e.config.crypto);
      await this.replace(e, { ...e.config, crypto: next }, where, 'revoke');
      this.log.info('crypto cleared: suite none, applies at the next handshake', { node: name, op: 'crypto clear' });
      return cryptoShow(next, this.cores);
    });
  }
}
