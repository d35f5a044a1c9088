// The node registry: named nodes, each an immutable config (replaced on every change) next to its
// live runtime. Every command validates fully before it changes anything: a refused command
// changes nothing. Errors are DstErrors naming the operation and the node
// ("node add vol: disk /x: no such file (ENOENT)").
import { constants as fsConstants } from 'node:fs';
import { access, open, readFile, stat, unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute } from 'node:path';
import { DstError, errnoOf, type DstErrorCode } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { formatDuration, formatHostPort, parseHostPort, parseNodeName, type HostPort } from '../util/parse.js';
import { cipherImplementationText } from '../protocol/native-cipher.js';
import { diskId, diskLockText, sameDisk } from './export/disk-lock.js';
import { DIRECT_GATE, type ChangeGate } from './config-store.js';
import { POLICY_TABLE } from './policy.js';
import { AttachManager, type AttachManagerOptions, type AttachMethodArg, type DetachResult } from './attach/manager.js';
import {
  DEFAULT_CRYPTO, DEFAULT_POLICY, deadlineMs, emptyStats,
  type AclEntry, type CryptoConfig, type CryptoSetArgs, type CryptoShow, type ExportConfig,
  type NodeAddArgs, type NodeConfig, type NodeContext, type NodeRuntime, type NodeShow, type NodeState,
  type Policy, type RemoteConfig, type RemoteRuntime, type StatusShow, type AttachmentShow, type EventSink,
} from './types.js';
import {
  applyPolicy, canonicalAddr, checkKeyFile, checkThreads, cryptoShow, normalizeCipher, normalizeHash, parsePerm,
  suiteName,
} from './validate.js';

export type ExportFactory = (node: { readonly config: ExportConfig }, ctx: NodeContext) => NodeRuntime;
export type RemoteFactory = (node: { readonly config: RemoteConfig }, ctx: NodeContext) => RemoteRuntime;

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

/** Serialises config mutations per node (set, security, crypto). */
class KeyedMutex {
  private tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => { release = r; });
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

function deepFreeze<T extends NodeConfig>(c: T): T {
  Object.freeze(c.policy);
  Object.freeze(c.crypto);
  if (c.role === 'export') {
    c.acl.forEach((e) => Object.freeze(e));
    Object.freeze(c.acl);
  }
  return Object.freeze(c);
}

/** Prefix a thrown error with the operation; map system errors to DstErrors. */
export function wrapError(err: unknown, where: string): DstError {
  if (err instanceof DstError) {
    if (err.message.startsWith(where)) return err;
    return new DstError(err.code, `${where}: ${err.message}`, { errno: err.errno, cause: err });
  }
  const errno = errnoOf(err);
  const code: DstErrorCode = errno === 'ENOENT' ? 'DST_ERR_NOT_FOUND'
    : errno === 'EADDRINUSE' || errno === 'EBUSY' ? 'DST_ERR_BUSY'
      : errno === 'EEXIST' ? 'DST_ERR_EXISTS'
        : errno ? 'DST_ERR_IO' : 'DST_ERR_INTERNAL';
  const msg = (err as Error)?.message ?? String(err);
  return new DstError(code, `${where}: ${msg}`, { errno, cause: err });
}

const opName = (cmd: string): string => cmd.replace(/-/g, ' ');

/** Real size of a block device: /sys/dev/block/MAJ:MIN/size × 512. */
async function blockDeviceSize(path: string): Promise<number> {
  const st = await stat(path, { bigint: true });
  const dev = st.rdev;
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  const text = await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
  const sectors = Number(text.trim());
  if (!Number.isSafeInteger(sectors)) throw new Error(`cannot read the size of block device ${path} from /sys/dev/block/${major}:${minor}/size`);
  return sectors * 512;
}

function testBind(hp: HostPort): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ host: hp.host, port: hp.port, exclusive: true }, () => srv.close(() => resolve()));
  });
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

function portsClash(a: HostPort, b: HostPort): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  return a.host === b.host || WILDCARDS.has(a.host) || WILDCARDS.has(b.host);
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
        if (!e) return null;
        const r = e.runtime.show();
        return { role: e.config.role, state: e.runtime.state, reason: e.runtime.reason, socket: r.nbd?.socket ?? null, permissions: r.permissions ?? null };
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

  private entry(name: unknown, where: string): Entry {
    const e = typeof name === 'string' ? this.nodes.get(name) : undefined;
    if (!e) {
      throw new DstError('DST_ERR_NOT_FOUND', `${where}: no node named ${JSON.stringify(name)} (see dst node list)`, { errno: 'ENOENT' });
    }
    return e;
  }

  /** Refuse `cmd` unless the node's state is one of `states` (from the control table). */
  checkState(cmd: string, name: string, states: readonly NodeState[]): void {
    const where = `${opName(cmd)} ${name}`;
    const e = this.entry(name, where);
    const state = e.runtime.state;
    if (!states.includes(state)) {
      const hint = states.length === 1 && states[0] === 'configured' ? `; stop it first (dst node stop ${name})`
        : states.includes('ready') && (state === 'configured' || state === 'failed') ? `; start it first (dst node start ${name})`
          : states.includes('ready') ? `; wait until it is ready (dst node show ${name})` : '';
      throw new DstError('DST_ERR_STATE', `${where}: not allowed while the node is ${state} (allowed: ${states.join(', ')})${hint}`, { errno: 'EBUSY' });
    }
  }

  // ---- show ----

  private buildShow(e: Entry): NodeShow {
    const c = e.config;
    const r = e.runtime.show();
    const exp = c.role === 'export';
    return {
      name: c.name,
      role: c.role,
      state: r.state ?? e.runtime.state,
      reason: r.reason ?? null,
      size: r.size ?? c.size ?? (exp ? e.diskSize : null),
      autostart: c.autostart,
      disk: exp ? c.disk : null,
      listen: exp ? (r.listen ?? c.listen) : null,
      readonly: exp ? c.readonly : null,
      acl: exp ? c.acl.map((a) => ({ addr: a.addr, perm: a.perm, keyFile: a.keyFile })) : null,
      remote: exp ? null : c.remote,
      export: exp ? null : c.export,
      permissions: exp ? null : (r.permissions ?? null),
      nbd: exp || !r.nbd ? null : { socket: r.nbd.socket, uri: r.nbd.uri, listen: r.nbd.listen ?? null },
      attachment: exp ? null : this.attachments.show(c.name),
      sessionId: exp ? null : (r.sessionId ?? null),
      policy: { ...c.policy, deadlineMs: deadlineMs(c.policy) },
      stats: { ...emptyStats(), ...r.stats },
      crypto: cryptoShow(c.crypto, this.cores),
    };
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

  status(extra: { socket?: string; version?: string } = {}): Omit<StatusShow, 'config'> {
    return {
      version: extra.version ?? this.opts.version ?? '0.0.0',
      pid: process.pid,
      uptimeMs: Math.max(0, Math.round(this.opts.clock.now() - this.startedAt)),
      socket: extra.socket ?? this.opts.socket ?? '',
      stateDir: this.opts.stateDir,
      limits: { ...this.opts.limits },
      cryptoThreads: this.cryptoThreads(),
      cipherImpl: cipherImplementationText,
      diskLock: diskLockText,
      nodes: [...this.nodes.values()].map((e) => ({ name: e.config.name, role: e.config.role, state: e.runtime.state, attachment: this.attachments.show(e.config.name) })),
    };
  }

  /** What runs now, autostart = the operator's intent (for config show/save). */
  snapshot(): NodeConfig[] {
    return [...this.nodes.values()].map((e) => ({ ...e.config, autostart: e.wanted }) as NodeConfig);
  }

  /** snapshot() as it will be once `changed` configs replace (or join) the nodes of their names. */
  private snapshotWith(...changed: NodeConfig[]): NodeConfig[] {
    const nodes = this.snapshot();
    for (const c of changed) {
      const i = nodes.findIndex((n) => n.name === c.name);
      if (i >= 0) nodes[i] = c; else nodes.push(c);
    }
    return nodes;
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

  /** Check a listen address against every other node (configured, pending, or in this batch). */
  private checkListenClash(c: ExportConfig, batch: NodeConfig[], where: string): void {
    const mine = parseHostPort(c.listen);
    for (const o of this.otherExports(c, batch)) {
      if (portsClash(mine, parseHostPort(o.listen))) {
        throw new DstError('DST_ERR_BUSY', `${where}: listen ${c.listen}: port already used by node ${o.name}`, { errno: 'EADDRINUSE' });
      }
    }
  }

  /** One disk, one export: refuse a disk that is the same file (any path, symlink, hard link) as another export's. */
  private async checkDiskClash(c: ExportConfig, batch: NodeConfig[], where: string): Promise<void> {
    const mine = await diskId(c.disk);
    if (mine === null) return; // not there yet: checked again at start
    for (const o of this.otherExports(c, batch)) {
      const theirs = await diskId(o.disk);
      if (theirs !== null && sameDisk(mine, theirs)) {
        throw new DstError('DST_ERR_BUSY', `${where}: disk ${c.disk}${mine.real !== c.disk ? ` (${mine.real})` : ''} is the same file as the disk ${o.disk} of node ${o.name}: one disk, one export`,
          { errno: 'EBUSY' });
      }
    }
  }

  private async checkCrypto(name: string, c: CryptoConfig, where: string): Promise<void> {
    suiteName(c, where);
    if (c.threads !== null) checkThreads(c.threads, where);
    const log = this.log.child({ node: name });
    if (c.cipherKeyFile !== null) await checkKeyFile(c.cipherKeyFile, where, log);
    if (c.hashKeyFile !== null) await checkKeyFile(c.hashKeyFile, where, log);
  }

  /** Validate an export's meaning. Returns the disk size and whether the disk must be created. */
  private async validateExport(c: ExportConfig, where: string, create: number | null, batch: NodeConfig[]):
  Promise<{ diskSize: number; mustCreate: boolean }> {
    if (typeof c.disk !== 'string' || c.disk === '') throw new DstError('DST_ERR_INVALID', `${where}: an export node needs a disk (--disk PATH)`);
    if (!isAbsolute(c.disk)) throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk}: must be an absolute path`);
    if (typeof c.listen !== 'string' || c.listen === '') throw new DstError('DST_ERR_INVALID', `${where}: an export node needs a listen address (--listen IP:PORT)`);
    let hp: HostPort;
    try {
      hp = parseHostPort(c.listen, 'listen address');
    } catch (err) {
      throw wrapError(err, where);
    }
    if (c.size !== null && (!Number.isSafeInteger(c.size) || c.size <= 0)) {
      throw new DstError('DST_ERR_INVALID', `${where}: size ${c.size} must be a positive number of bytes`);
    }
    if (create !== null && (!Number.isSafeInteger(create) || create <= 0)) {
      throw new DstError('DST_ERR_INVALID', `${where}: --create ${create} must be a positive number of bytes`);
    }
    const acl = new Set<string>();
    for (const a of c.acl) {
      const addr = canonicalAddr(a.addr, where);
      if (acl.has(addr)) throw new DstError('DST_ERR_INVALID', `${where}: ACL entry ${addr} appears twice`);
      acl.add(addr);
      parsePerm(a.perm, where);
      if (a.keyFile !== null) await checkKeyFile(a.keyFile, where, this.log.child({ node: c.name }));
    }
    await this.checkCrypto(c.name, c.crypto, where);

    let diskSize: number;
    let mustCreate = false;
    let st;
    try {
      st = await stat(c.disk);
    } catch (err) {
      const errno = errnoOf(err);
      if (errno !== 'ENOENT' || create === null) {
        this.log.debug(`stat ${c.disk}: ${(err as Error).message}`, { node: c.name, op: where, errno });
        if (errno === 'ENOENT') {
          throw new DstError('DST_ERR_NOT_FOUND', `${where}: disk ${c.disk}: no such file (ENOENT); use --create SIZE to make one`, { errno });
        }
        throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk}: ${(err as Error).message}`, { errno, cause: err });
      }
    }
    if (st) {
      if (st.isFile()) diskSize = st.size;
      else if (st.isBlockDevice()) {
        try {
          diskSize = await blockDeviceSize(c.disk);
        } catch (err) {
          throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
        }
      } else {
        throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk}: not a regular file or block device`, { errno: st.isDirectory() ? 'EISDIR' : 'EINVAL' });
      }
      if (create !== null && diskSize < create) {
        throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk} exists with ${diskSize} bytes, less than --create ${create}; remove it or create less`, { errno: 'EEXIST' });
      }
      try {
        await access(c.disk, fsConstants.R_OK | (c.readonly ? 0 : fsConstants.W_OK));
      } catch (err) {
        const errno = errnoOf(err);
        throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk}: no ${c.readonly ? 'read' : 'read/write'} access (${errno})${c.readonly ? '' : '; use --readonly for a read-only export'}`, { errno });
      }
    } else {
      const dir = dirname(c.disk);
      try {
        const ds = await stat(dir);
        if (!ds.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
        await access(dir, fsConstants.W_OK);
      } catch (err) {
        const errno = errnoOf(err);
        throw new DstError(errno === 'ENOENT' ? 'DST_ERR_NOT_FOUND' : 'DST_ERR_INVALID',
          `${where}: cannot create disk ${c.disk}: directory ${dir}: ${errno === 'ENOENT' ? 'no such directory' : (err as Error).message} (${errno})`, { errno });
      }
      diskSize = create!;
      mustCreate = true;
    }
    if (diskSize === 0) throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk} is empty (0 bytes)`, { errno: 'EINVAL' });
    if (c.size !== null && c.size > diskSize) {
      throw new DstError('DST_ERR_INVALID', `${where}: size ${c.size} is larger than disk ${c.disk} (${diskSize} bytes)`, { errno: 'EINVAL' });
    }

    this.checkListenClash(c, batch, where);
    try {
      await testBind(hp);
    } catch (err) {
      const errno = errnoOf(err);
      this.log.debug(`test bind ${c.listen}: ${(err as Error).message}`, { node: c.name, op: where, errno });
      if (errno === 'EADDRINUSE') throw new DstError('DST_ERR_BUSY', `${where}: listen ${c.listen}: port in use (EADDRINUSE)`, { errno });
      if (errno === 'EADDRNOTAVAIL') throw new DstError('DST_ERR_INVALID', `${where}: listen ${c.listen}: not a local address (EADDRNOTAVAIL)`, { errno });
      if (errno === 'EACCES') throw new DstError('DST_ERR_INVALID', `${where}: listen ${c.listen}: permission denied (EACCES); ports below 1024 need privileges`, { errno });
      throw new DstError('DST_ERR_INVALID', `${where}: listen ${c.listen}: ${(err as Error).message}`, { errno, cause: err });
    }
    await this.checkDiskClash(c, batch, where);
    return { diskSize, mustCreate };
  }

  private async validateRemote(c: RemoteConfig, where: string): Promise<void> {
    if (typeof c.remote !== 'string' || c.remote === '') throw new DstError('DST_ERR_INVALID', `${where}: a remote node needs the export's address (--remote HOST:PORT)`);
    try {
      parseHostPort(c.remote, 'remote address', false);
      if (c.export !== null) parseNodeName(c.export, 'export name');
      if (c.nbdListen !== null) parseHostPort(c.nbdListen, 'NBD listen address');
    } catch (err) {
      throw wrapError(err, where);
    }
    if (c.size !== null && (!Number.isSafeInteger(c.size) || c.size <= 0)) {
      throw new DstError('DST_ERR_INVALID', `${where}: size ${c.size} must be a positive number of bytes`);
    }
    await this.checkCrypto(c.name, c.crypto, where);
  }

  private async validateConfig(c: NodeConfig, where: string, create: number | null, batch: NodeConfig[]): Promise<number | null> {
    try {
      parseNodeName(c.name);
    } catch (err) {
      throw wrapError(err, where);
    }
    applyPolicy(DEFAULT_POLICY, c.policy, this.opts.limits, where);
    if (c.role === 'export') return (await this.validateExport(c, where, create, batch)).diskSize;
    if (c.role === 'remote') {
      await this.validateRemote(c, where);
      return null;
    }
    throw new DstError('DST_ERR_INVALID', `${where}: role must be export or remote, not ${JSON.stringify((c as { role: unknown }).role)}`);
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
        if (event === 'state-changed' && fields?.to) this.attachments.nodeState(node, fields.to, fields.reason ?? null);
      },
    };
    const ctx: NodeContext = {
      clock: this.opts.clock, log, events, runtimeDir: this.opts.runtimeDir,
      stateDir: this.opts.stateDir, limits: this.opts.limits, cryptoPool: this.opts.cryptoPool,
    };
    if (frozen.role === 'export') {
      entry.runtime = this.opts.createExport({ get config() { return entry.config as ExportConfig; } }, ctx);
    } else {
      entry.runtime = this.opts.createRemote({ get config() { return entry.config as RemoteConfig; } }, ctx);
    }
    this.nodes.set(c.name, entry);
    this.opts.events.emit(c.name, 'node-added');
    log.info(`added ${c.role} node`, { op: 'node add' });
    return entry;
  }

  /** node add: validate meaning, create the disk if asked (last), store. Does not serve. */
  async add(args: NodeAddArgs): Promise<NodeShow> {
    const name = args?.name;
    const where = `node add ${typeof name === 'string' ? name : JSON.stringify(name)}`;
    try {
      parseNodeName(name);
    } catch (err) {
      throw wrapError(err, where);
    }
    const base = { name, size: args.size ?? null, autostart: false, policy: { ...DEFAULT_POLICY }, crypto: { ...DEFAULT_CRYPTO } };
    let cfg: NodeConfig;
    const notFor = (keys: [string, unknown][], role: string): void => {
      for (const [flag, v] of keys) {
        if (v !== undefined && v !== null && v !== false) {
          throw new DstError('DST_ERR_INVALID', `${where}: --${flag} is only for ${role} nodes`);
        }
      }
    };
    if (args.role === 'export') {
      notFor([['remote', args.remote], ['export', args.export], ['nbd-listen', args.nbdListen]], 'remote');
      cfg = { ...base, role: 'export', disk: args.disk ?? '', listen: args.listen ?? '', readonly: args.readonly === true, acl: [] };
    } else if (args.role === 'remote') {
      notFor([['disk', args.disk], ['listen', args.listen], ['readonly', args.readonly], ['create', args.create]], 'export');
      cfg = { ...base, role: 'remote', remote: args.remote ?? '', export: args.export || null, nbdListen: args.nbdListen ?? null };
    } else {
      throw new DstError('DST_ERR_INVALID', `${where}: role must be export or remote, not ${JSON.stringify(args.role)}`);
    }
    this.reserve([name], where);
    this.pending.set(name, cfg);
    try {
      const create = cfg.role === 'export' ? (args.create ?? null) : null;
      const diskSize = await this.validateConfig(cfg, where, create, []);
      this.reserveCheckAgain(cfg, where);
      const e = await this.gate.grant(where, () => this.snapshotWith(cfg), async () => {
        if (cfg.role === 'export' && create !== null) await this.createDisk(name, cfg.disk, create, where);
        return this.commit(cfg, diskSize, false);
      });
      return this.buildShow(e);
    } finally {
      this.pending.delete(name);
    }
  }

  /** After the async checks: a listen clash may have appeared meanwhile. */
  private reserveCheckAgain(c: NodeConfig, where: string): void {
    if (c.role === 'export') this.checkListenClash(c, [], where);
  }

  /** Make a sparse file of `size` bytes at `path`; an existing one is reused as it is. */
  private async createDisk(node: string, path: string, size: number, where: string): Promise<void> {
    let fh;
    try {
      fh = await open(path, 'wx', 0o600);
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') {
        this.log.info(`disk ${path} exists; reusing it`, { node, op: where });
        return;
      }
      throw new DstError('DST_ERR_INVALID', `${where}: cannot create disk ${path}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
    }
    try {
      await fh.truncate(size);
      this.log.info(`created sparse disk ${path} of ${size} bytes`, { node, op: where });
    } catch (err) {
      await fh.close().catch(() => {});
      await unlink(path).catch(() => {});
      throw new DstError('DST_ERR_INVALID', `${where}: cannot size disk ${path}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
    }
    await fh.close();
  }

  /**
   * config load: all-or-nothing. Refuses names that already exist (or repeat), validates every
   * node, then adds them all, autostart as the file says; those are started (without waiting)
   * when `start`.
   */
  async load(configs: NodeConfig[], where: string, opts: { start: boolean }): Promise<string[]> {
    const names = configs.map((c) => c.name);
    this.reserve(names, where);
    for (const c of configs) this.pending.set(c.name, c);
    const sizes: (number | null)[] = [];
    try {
      for (const c of configs) {
        const w = `${where}: node ${c.name}`;
        sizes.push(await this.validateConfig(c, w, null, configs));
      }
      for (const c of configs) this.reserveCheckAgain(c, `${where}: node ${c.name}`);
      // started inside the change, so the ports they bind are saved with it
      await this.gate.grant(where, () => this.snapshotWith(...configs), async () => {
        configs.forEach((c, i) => this.commit(c, sizes[i]!, c.autostart));
        if (opts.start) await this.startWanted(names);
      });
    } finally {
      for (const n of names) this.pending.delete(n);
    }
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
  private async startNode(e: Entry, where: string): Promise<void> {
    const name = e.config.name;
    const before = e.runtime.state;
    try {
      if (e.config.role === 'export') await this.checkDiskClash(e.config, [], where);
      await e.runtime.start();
    } catch (err) {
      this.log.error(`start failed: ${(err as Error).message}`, { node: name, op: 'node start', errno: errnoOf(err) });
      throw wrapError(err, where);
    }
    if (this.nodes.get(name) !== e) return;
    this.setWanted(e, true);
    const bound = e.runtime.show().listen;
    if (e.config.role === 'export' && bound) {
      const asked = parseHostPort(e.config.listen);
      if (asked.port === 0) {
        e.config = deepFreeze({ ...e.config, listen: formatHostPort({ host: asked.host, port: parseHostPort(bound).port }) });
      }
    }
    if (before === 'configured' || before === 'failed') {
      this.opts.events.emit(name, 'node-started');
      this.log.info('started', { node: name, op: 'node start' });
    }
  }

  /**
   * node start: idempotent; saved as autostart before it starts (a remote that keeps trying
   * counts as started). A remote waits up to waitMs for ready (0 = no wait).
   */
  async start(name: string, waitMs: number): Promise<NodeShow> {
    const where = `node start ${name}`;
    const e = this.entry(name, where);
    if (e.runtime.state === 'stopping') {
      throw new DstError('DST_ERR_STATE', `${where}: the node is stopping; start it again once it is configured`, { errno: 'EBUSY' });
    }
    if (e.config.role === 'export' && e.config.acl.length === 0) {
      this.log.warn(`export ${name} has an empty ACL: nobody may connect; add an entry with: dst security add ${name} --addr IP[/PREFIX] --perm rw`,
        { node: name, op: 'node start' });
    }
    await this.gate.grant(where, () => this.snapshotWith({ ...e.config, autostart: true } as NodeConfig), () => this.startNode(e, where));
    if (this.nodes.get(name) !== e) return this.buildShow(e);
    if (e.config.role === 'remote' && waitMs > 0) {
      const rt = e.runtime as RemoteRuntime;
      const st = await rt.waitReady(waitMs);
      if (st !== 'ready') {
        const reason = rt.reason;
        const why = `state ${st}${reason ? ` (reason ${reason})` : ''}`;
        if (st === 'failed') {
          throw new DstError('DST_ERR_IDENTITY', `${where}: not ready: ${why}; the node stays failed until started again`, { errno: 'EIO' });
        }
        if (st === 'configured' || st === 'stopping') {
          throw new DstError('DST_ERR_STATE', `${where}: the node was stopped while waiting for it to become ready`, { errno: 'ESHUTDOWN' });
        }
        throw new DstError('DST_ERR_TIMEOUT',
          `${where}: not ready after ${formatDuration(waitMs)}: ${why}; the node keeps trying (watch it with dst node show ${name})`, { errno: 'ETIMEDOUT' });
      }
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
      if (e.runtime.state !== 'configured') {
        throw new DstError('DST_ERR_STATE', `${where}: the node is ${e.runtime.state}; stop it first (dst node stop ${name})`, { errno: 'EBUSY' });
      }
      const att = this.attachments.show(name);
      if (att) {
        throw new DstError('DST_ERR_BUSY', `${where}: the node is attached as ${att.device || '(attaching)'} (${att.state}); detach it first (dst detach ${name})`, { errno: 'EBUSY' });
      }
      this.nodes.delete(name);
      this.opts.events.emit(name, 'node-removed');
      this.log.info('removed', { node: name, op: 'node del' });
    });
    return { name };
  }

  /** node reconnect: remote only; crypto changes apply. */
  reconnect(name: string): NodeShow {
    const where = `node reconnect ${name}`;
    const e = this.entry(name, where);
    if (e.config.role !== 'remote') throw new DstError('DST_ERR_INVALID', `${where}: ${name} is an export node; reconnect applies to remote nodes`);
    (e.runtime as RemoteRuntime).reconnect();
    this.log.info('reconnect requested', { node: name, op: 'node reconnect' });
    return this.buildShow(e);
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

  // ---- attachments ----

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

  /** Engine start: clean the attachments a crashed engine left behind. */
  reconcileAttachments(): Promise<void> {
    return this.attachments.reconcile();
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
    const clean: Partial<Policy> = {};
    for (const { field } of POLICY_TABLE) {
      if (patch[field] !== undefined && patch[field] !== null) clean[field] = patch[field];
    }
    return this.locks.run(name, async () => {
      const e = this.entry(name, where);
      const policy = applyPolicy(e.config.policy, clean, this.opts.limits, where);
      await this.replace(e, { ...e.config, policy }, where, 'grant');
      this.log.info(`policy set: ${POLICY_TABLE.filter((k) => clean[k.field] !== undefined).map((k) => k.key).join(', ') || 'nothing'}`, { node: name, op: 'node set' });
      return this.buildShow(e);
    });
  }

  private exportEntry(name: string, where: string): Entry & { config: ExportConfig } {
    const e = this.entry(name, where);
    if (e.config.role !== 'export') {
      throw new DstError('DST_ERR_INVALID', `${where}: ${name} is a remote node; ACLs apply to export nodes`);
    }
    return e as Entry & { config: ExportConfig };
  }

  private async aclEntry(name: string, a: { addr: unknown; perm: unknown; keyFile?: unknown }, where: string): Promise<AclEntry> {
    const addr = canonicalAddr(a.addr, where);
    const perm = parsePerm(a.perm, where);
    const keyFile = a.keyFile === undefined || a.keyFile === null || a.keyFile === '' ? null : a.keyFile;
    if (keyFile !== null) await checkKeyFile(keyFile, where, this.log.child({ node: name }));
    return { addr, perm, keyFile: keyFile as string | null };
  }

  private aclResult(c: ExportConfig): AclEntry[] {
    return c.acl.map((a) => ({ addr: a.addr, perm: a.perm, keyFile: a.keyFile }));
  }

  /** security add: add an entry, or replace the one for the same address. */
  async securityAdd(name: string, addr: string, perm: string, keyFile: string | null): Promise<AclEntry[]> {
    const where = `security add ${name}`;
    this.exportEntry(name, where);
    const entry = await this.aclEntry(name, { addr, perm, keyFile }, where);
    return this.locks.run(name, async () => {
      const e = this.exportEntry(name, where);
      const i = e.config.acl.findIndex((a) => a.addr === entry.addr);
      const acl = [...e.config.acl];
      if (i >= 0) acl[i] = entry; else acl.push(entry);
      await this.replace(e, { ...e.config, acl }, where, 'grant');
      this.log.info(`ACL ${i >= 0 ? 'replaced' : 'added'} ${entry.addr} ${entry.perm}${entry.keyFile ? ' with key file ' + entry.keyFile : ''}`, { node: name, op: 'security add' });
      return this.aclResult(e.config);
    });
  }

  async securityDel(name: string, addr: string): Promise<AclEntry[]> {
    const where = `security del ${name}`;
    this.exportEntry(name, where);
    const canon = canonicalAddr(addr, where);
    return this.locks.run(name, async () => {
      const e = this.exportEntry(name, where);
      if (!e.config.acl.some((a) => a.addr === canon)) {
        throw new DstError('DST_ERR_NOT_FOUND', `${where}: no ACL entry for ${canon}`, { errno: 'ENOENT' });
      }
      await this.replace(e, { ...e.config, acl: e.config.acl.filter((a) => a.addr !== canon) }, where, 'revoke');
      this.log.info(`ACL removed ${canon}`, { node: name, op: 'security del' });
      return this.aclResult(e.config);
    });
  }

  securityList(name: string): AclEntry[] {
    return this.aclResult(this.exportEntry(name, `security list ${name}`).config);
  }

  /** security load: all entries at once (same address → replaced), all-or-nothing. */
  async securityLoad(name: string, entries: { addr: unknown; perm: unknown; keyFile?: unknown }[]): Promise<AclEntry[]> {
    const where = `security load ${name}`;
    this.exportEntry(name, where);
    if (!Array.isArray(entries)) throw new DstError('DST_ERR_INVALID', `${where}: entries must be a list`);
    const parsed: AclEntry[] = [];
    for (const [i, raw] of entries.entries()) {
      const entry = await this.aclEntry(name, raw ?? {}, `${where}: entry ${i + 1}`);
      if (parsed.some((p) => p.addr === entry.addr)) {
        throw new DstError('DST_ERR_INVALID', `${where}: entry ${i + 1}: ${entry.addr} appears twice`);
      }
      parsed.push(entry);
    }
    return this.locks.run(name, async () => {
      const e = this.exportEntry(name, where);
      const acl = [...e.config.acl];
      for (const p of parsed) {
        const i = acl.findIndex((a) => a.addr === p.addr);
        if (i >= 0) acl[i] = p; else acl.push(p);
      }
      await this.replace(e, { ...e.config, acl }, where, 'grant');
      this.log.info(`ACL loaded ${parsed.length} entries`, { node: name, op: 'security load' });
      return this.aclResult(e.config);
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
      const cur = e.config.crypto;
      const next: CryptoConfig = { ...cur };
      const given = (v: unknown): boolean => v !== undefined && v !== null;
      let hmacAsked = false;
      if (given(args.cipher)) {
        next.cipher = normalizeCipher(args.cipher, where);
        if (next.cipher === 'none') next.cipherKeyFile = null;
        if ((next.cipher === 'aes-gcm' || next.cipher === 'chacha20-poly1305') && !given(args.hash)) {
          next.hash = 'none';
          next.hashKeyFile = null;
        }
      }
      if (given(args.hash)) {
        const h = normalizeHash(args.hash, where);
        next.hash = h.hash;
        hmacAsked = h.hmac;
        if (h.hash === 'none') next.hashKeyFile = null;
      }
      if (given(args.cipherKeyFile) && args.cipherKeyFile !== '') next.cipherKeyFile = args.cipherKeyFile!;
      if (given(args.hashKeyFile) && args.hashKeyFile !== '') next.hashKeyFile = args.hashKeyFile!;
      if (given(args.threads)) next.threads = checkThreads(args.threads, where);
      if (hmacAsked && next.hashKeyFile === null) {
        throw new DstError('DST_ERR_INVALID', `${where}: hash ${String(args.hash)} is keyed: add --hash-key-file FILE`);
      }
      const suite = suiteName(next, where);
      const klog = this.log.child({ node: name });
      if (next.cipherKeyFile !== null) await checkKeyFile(next.cipherKeyFile, where, klog);
      if (next.hashKeyFile !== null) await checkKeyFile(next.hashKeyFile, where, klog);
      if (suite.startsWith('none+') && !suite.startsWith('none+hmac-')) {
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
      const next: CryptoConfig = { ...DEFAULT_CRYPTO, threads: e.config.crypto.threads };
      await this.replace(e, { ...e.config, crypto: next }, where, 'revoke');
      this.log.info('crypto cleared: suite none, applies at the next handshake', { node: name, op: 'crypto clear' });
      return cryptoShow(next, this.cores);
    });
  }
}
