// Attachments of remote nodes as local block devices (DESIGN §10): `dst attach` / `dst detach`,
// their state (attaching → attached → detaching, or broken), events, the record in the state dir,
// supervision, the reconciliation of a crashed engine's leftovers, and the rules that keep a
// mounted device from being pulled away (`detach`, `node stop` refuse unless --force).
//
// Reconciliation at engine start CLEANS leftovers (loop device, FUSE mount, nbdfuse process,
// /dev/nbdN connection) rather than re-making them: the NBD connection a leftover used died with
// the old engine, so whatever was mounted on it already sees I/O errors, and re-making it would
// hand a filesystem a device that silently changed under it. Attach again once the node is ready.
import { join } from 'node:path';
import { realClock, type Clock } from '../../util/clock.js';
import { DstError, errnoOf } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import type { AttachMethodArg, AttachmentShow, DetachShow, EventSink, NodeState, Role } from '../types.js';
import { umountArgs } from './argv.js';
import { createFuseMethod } from './fuse-method.js';
import type { AttachMethod, LiveAttachment, MethodDeps } from './method.js';
import { describeUsers, deviceUsers, inUse, mounts, type DeviceUsers } from './mounts.js';
import { createNbdMethod } from './nbd-method.js';
import { readRecords, removeRecord, writeRecord, type AttachmentRecord, type AttachMethodName } from './record.js';
import { describeRun, realSystem, type System } from './system.js';

export type { AttachMethodArg } from '../types.js';
export type DetachResult = DetachShow;

/** What the manager needs to know about a node. */
export interface AttachNodeInfo {
  role: Role;
  state: NodeState;
  reason: string | null;
  /** the NBD unix socket, once it serves */
  socket: string | null;
  permissions: 'r' | 'w' | 'rw' | null;
}

export interface AttachManagerOptions {
  stateDir: string;
  runtimeDir: string;
  log: Logger;
  events: EventSink;
  /** the node's info, or null when there is no such node */
  node(name: string): AttachNodeInfo | null;
  sys?: System;
  clock?: Clock;
  /** supervision poll interval, default 1000 ms */
  pollMs?: number;
  /** bound of each helper command, default 30 s */
  stepTimeoutMs?: number;
  /** bound of waiting for a helper to come up or go away, default 15 s */
  settleTimeoutMs?: number;
  /** bound of unmounting a filesystem (--force, shutdown) before falling back to umount -l, default 90 s */
  umountTimeoutMs?: number;
  /** method factories (tests) */
  methods?: Partial<Record<AttachMethodName, (deps: MethodDeps) => AttachMethod>>;
}

interface Entry {
  name: string;
  method: AttachMethodName;
  device: string;
  state: AttachmentShow['state'];
  reason: string | null;
  live: LiveAttachment | null;
  record: AttachmentRecord;
  /** settles when the attach that made this entry finished (either way) */
  attached: Promise<void>;
}

export class AttachManager {
  private readonly entries = new Map<string, Entry>();
  private readonly sys: System;
  private readonly clock: Clock;
  private readonly methods: Record<AttachMethodName, AttachMethod>;
  private readonly umountTimeoutMs: number;
  private readonly log: Logger;
  private reconciled: Promise<void> | null = null;

  constructor(private readonly opts: AttachManagerOptions) {
    this.sys = opts.sys ?? realSystem;
    this.clock = opts.clock ?? realClock;
    this.log = opts.log;
    this.umountTimeoutMs = opts.umountTimeoutMs ?? 90_000;
    const deps: MethodDeps = {
      sys: this.sys, clock: this.clock, log: opts.log,
      pollMs: opts.pollMs ?? 1000, stepTimeoutMs: opts.stepTimeoutMs ?? 30_000, settleTimeoutMs: opts.settleTimeoutMs ?? 15_000,
    };
    this.methods = {
      nbd: (opts.methods?.nbd ?? createNbdMethod)(deps),
      fuse: (opts.methods?.fuse ?? createFuseMethod)(deps),
    };
  }

  mountDir(name: string): string {
    return join(this.opts.runtimeDir, 'attach', name);
  }

  pidFile(name: string): string {
    return join(this.opts.runtimeDir, 'attach', `${name}.pid`);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  show(name: string): AttachmentShow | null {
    const e = this.entries.get(name);
    return e ? { device: e.device, method: e.method, state: e.state } : null;
  }

  /** Who uses the attached device (mounts, swap, holders); null when not attached or no device yet. */
  async users(name: string): Promise<DeviceUsers | null> {
    const e = this.entries.get(name);
    if (!e || !e.device) return null;
    return deviceUsers(this.sys, e.device);
  }

  // ---- attach ----

  /** The method `auto` picks, or the error saying what is missing for each. */
  async resolveMethod(method: AttachMethodArg, where: string): Promise<AttachMethod> {
    if (method === 'nbd' || method === 'fuse') {
      const m = this.methods[method];
      const why = await m.missing();
      if (why !== null) {
        throw new DstError('DST_ERR_INVALID', `${where}: method ${method} is not available: ${why}`
          + (method === 'nbd' ? '; --method fuse needs no kernel module but FUSE' : ''), { errno: 'ENODEV' });
      }
      return m;
    }
    if (method !== 'auto') {
      throw new DstError('DST_ERR_INVALID', `${where}: unknown method ${JSON.stringify(method)} (auto, nbd or fuse)`, { errno: 'EINVAL' });
    }
    const nbdWhy = await this.methods.nbd.missing();
    if (nbdWhy === null) return this.methods.nbd;
    const fuseWhy = await this.methods.fuse.missing();
    if (fuseWhy === null) {
      this.log.debug(`method auto: nbd not available (${nbdWhy}); using fuse`, { op: 'attach' });
      return this.methods.fuse;
    }
    throw new DstError('DST_ERR_INVALID',
      `${where}: no attach method is available here: nbd: ${nbdWhy}; fuse: ${fuseWhy}`, { errno: 'ENODEV' });
  }

  async attach(name: string, method: AttachMethodArg): Promise<AttachmentShow> {
    const where = `attach ${name}`;
    await this.reconcile();
    const info = this.opts.node(name);
    if (info === null) throw new DstError('DST_ERR_NOT_FOUND', `${where}: no node named ${JSON.stringify(name)} (see dst node list)`, { errno: 'ENOENT' });
    if (info.role !== 'remote') {
      throw new DstError('DST_ERR_INVALID', `${where}: ${name} is an export node; only remote nodes can be attached (attach the remote node that connects to it)`, { errno: 'EINVAL' });
    }
    const cur = this.entries.get(name);
    if (cur) {
      if (cur.state === 'attaching' || cur.state === 'detaching') {
        throw new DstError('DST_ERR_BUSY', `${where}: ${cur.state === 'attaching' ? 'an attach' : 'a detach'} of ${name} is in progress`, { errno: 'EBUSY' });
      }
      throw new DstError('DST_ERR_EXISTS',
        `${where}: already attached as ${cur.device} (${cur.method}${cur.state === 'broken' ? ', broken' : ''}); detach it first: dst detach ${name}`, { errno: 'EEXIST' });
    }
    if (info.state !== 'ready' || info.socket === null) {
      const hint = info.state === 'configured' || info.state === 'failed'
        ? `start it first: dst node start ${name}`
        : `wait until it is ready (dst node show ${name})`;
      throw new DstError('DST_ERR_STATE',
        `${where}: the node is ${info.state}${info.reason ? ` (${info.reason})` : ''}, not ready; ${hint}`, { errno: 'EAGAIN' });
    }
    const m = await this.resolveMethod(method, where);

    const record: AttachmentRecord = {
      name, method: m.name, device: null, mountDir: m.name === 'fuse' ? this.mountDir(name) : null, helperPid: null,
      socket: info.socket, enginePid: process.pid, createdAt: Date.now(),
    };
    let settle!: () => void;
    const entry: Entry = {
      name, method: m.name, device: '', state: 'attaching', reason: null, live: null, record,
      attached: new Promise<void>((r) => { settle = r; }),
    };
    this.entries.set(name, entry);
    const lg = { node: name, op: 'attach' };
    let live: LiveAttachment;
    try {
      await writeRecord(this.opts.stateDir, record);
      live = await m.attach({
        name, socket: info.socket, exportName: name, readonly: info.permissions === 'r',
        mountDir: this.mountDir(name), pidFile: this.pidFile(name),
        progress: async (patch) => {
          Object.assign(record, patch);
          if (patch.device) entry.device = patch.device;
          await writeRecord(this.opts.stateDir, record);
        },
      });
    } catch (err) {
      this.entries.delete(name);
      settle();
      await removeRecord(this.opts.stateDir, name).catch((e: unknown) => this.log.warn(`removing the attachment record: ${(e as Error).message}`, lg));
      const msg = (err as Error)?.message ?? String(err);
      this.log.error(`attach (${m.name}) failed: ${msg}`, { ...lg, errno: errnoOf(err) });
      if (err instanceof DstError) throw new DstError(err.code, `${where}: ${m.name}: ${msg}`, { errno: err.errno, cause: err });
      throw new DstError('DST_ERR_IO', `${where}: ${m.name}: ${msg}`, { errno: errnoOf(err) ?? 'EIO', cause: err });
    }
    entry.live = live;
    entry.device = live.device;
    entry.state = 'attached';
    this.log.info(`attached as ${live.device} (${m.name}${info.permissions === 'r' ? ', read-only' : ''})`, lg);
    this.opts.events.emit(name, 'attached', { device: live.device, method: m.name });
    live.watch((reason) => this.markBroken(entry, reason));
    settle();
    return { device: entry.device, method: entry.method, state: entry.state };
  }

  private markBroken(entry: Entry, reason: string): void {
    if (this.entries.get(entry.name) !== entry || entry.state !== 'attached') return;
    entry.state = 'broken';
    entry.reason = reason;
    this.log.error(`attachment ${entry.device} broke: ${reason}; detach it (dst detach ${entry.name}) and attach again`, { node: entry.name, op: 'attach' });
    this.opts.events.emit(entry.name, 'attach-broken', { reason, device: entry.device, method: entry.method });
  }

  /** Called when a node changed state: a node that failed or stopped breaks its attachment. */
  nodeState(name: string, state: NodeState, reason: string | null): void {
    const e = this.entries.get(name);
    if (!e || e.state !== 'attached') return;
    if (state === 'failed' || state === 'configured') {
      e.live?.unwatch();
      this.markBroken(e, `node ${name} is ${state}${reason ? ` (${reason})` : ''}: its I/O fails`);
    }
  }

  // ---- detach ----

  /** Unmount every filesystem on the device (umount, then umount -l if it is busy), swapoff. */
  private async releaseUsers(name: string, device: string, u: DeviceUsers, why: string): Promise<void> {
    const lg = { node: name, op: 'detach' };
    if (u.swap) {
      const r = await this.sys.run('swapoff', [device], { timeoutMs: this.umountTimeoutMs });
      if (r.code !== 0) this.log.warn(describeRun('swapoff', [device], r), lg);
    }
    // deepest mount points first
    for (const mp of [...u.mountPoints].sort((a, b) => b.length - a.length)) {
      this.log.warn(`${why}: unmounting ${mp} (on ${device})`, lg);
      const r = await this.sys.run('umount', umountArgs(mp, false), { timeoutMs: this.umountTimeoutMs });
      if (r.code === 0) continue;
      this.log.warn(`${describeRun('umount', umountArgs(mp, false), r)}; unmounting lazily (umount -l ${mp})`, lg);
      const rl = await this.sys.run('umount', umountArgs(mp, true), { timeoutMs: this.umountTimeoutMs });
      if (rl.code !== 0) this.log.error(describeRun('umount', umountArgs(mp, true), rl), lg);
    }
    if (u.holders.length) this.log.warn(`${device} is held by ${u.holders.join(', ')}; detaching anyway`, lg);
  }

  /**
   * Detach: refused while the device is mounted, used as swap or held, unless force (which
   * unmounts first). Leaves no device, mount or helper behind, or throws saying what is left.
   */
  async detach(name: string, force: boolean, where = `detach ${name}`): Promise<DetachResult> {
    await this.reconcile();
    const e = this.entries.get(name);
    if (!e) {
      const known = this.opts.node(name) !== null;
      throw new DstError('DST_ERR_NOT_FOUND', known ? `${where}: ${name} is not attached` : `${where}: no node named ${JSON.stringify(name)} (see dst node list)`,
        { errno: 'ENOENT' });
    }
    if (e.state === 'attaching' || e.state === 'detaching') {
      throw new DstError('DST_ERR_BUSY', `${where}: ${e.state === 'attaching' ? 'an attach' : 'a detach'} of ${name} is in progress`, { errno: 'EBUSY' });
    }
    const u = e.device ? await deviceUsers(this.sys, e.device) : null;
    if (u && inUse(u) && !force) {
      throw new DstError('DST_ERR_BUSY',
        `${where}: ${e.device} is ${describeUsers(u)}; unmount it first${u.mountPoints[0] ? ` (umount ${u.mountPoints[0]})` : ''}, or use --force (unmounts it, lazily if busy, then detaches)`,
        { errno: 'EBUSY' });
    }
    const before = e.state;
    e.state = 'detaching';
    const lg = { node: name, op: 'detach' };
    e.live?.unwatch();
    try {
      if (u && inUse(u)) await this.releaseUsers(name, e.device, u, where.startsWith('shutdown') ? 'engine shutdown' : '--force');
      if (e.live) await e.live.teardown();
      else await this.methods[e.method].cleanup(e.record, { mountDir: this.mountDir(name), pidFile: this.pidFile(name) });
    } catch (err) {
      e.state = 'broken';
      e.reason = (err as Error).message;
      if (before !== 'broken') this.opts.events.emit(name, 'attach-broken', { reason: e.reason, device: e.device, method: e.method });
      this.log.error(`detach failed: ${e.reason}`, { ...lg, errno: errnoOf(err) });
      throw new DstError('DST_ERR_IO', `${where}: ${e.reason}`, { errno: errnoOf(err) ?? 'EIO', cause: err });
    }
    this.entries.delete(name);
    await removeRecord(this.opts.stateDir, name).catch((err: unknown) => this.log.warn(`removing the attachment record: ${(err as Error).message}`, lg));
    this.log.info(`detached ${e.device} (${e.method})`, lg);
    this.opts.events.emit(name, 'detached', { device: e.device, method: e.method });
    return { name, device: e.device, method: e.method };
  }

  /**
   * Before `node stop`: refuse when the device is in use unless force; then detach (the device
   * would be dead without the node anyway).
   */
  async beforeStop(name: string, force: boolean, where: string): Promise<void> {
    const e = this.entries.get(name);
    if (!e) return;
    const u = e.device ? await deviceUsers(this.sys, e.device) : null;
    if (u && inUse(u) && !force) {
      throw new DstError('DST_ERR_BUSY',
        `${where}: ${name} is attached as ${e.device}, which is ${describeUsers(u)}; unmount it first${u.mountPoints[0] ? ` (umount ${u.mountPoints[0]})` : ''}, or use --force (unmounts and detaches it)`,
        { errno: 'EBUSY' });
    }
    await this.detach(name, force, where);
  }

  /** Engine shutdown: detach everything, unmounting what is mounted (a warning each). Never throws. */
  async detachAll(): Promise<void> {
    await Promise.all([...this.entries.values()].map(async (e) => {
      const name = e.name;
      try {
        await e.attached; // an attach in progress finishes first (its steps are bounded)
        if (this.entries.get(name) !== e) return;
        await this.detach(name, true, `shutdown: detach ${name}`);
      } catch (err) {
        this.log.error(`${(err as Error).message}; the next engine start cleans what is left`, { node: name, op: 'shutdown' });
      }
    }));
  }

  // ---- reconcile ----

  /** Clean what a crashed engine left behind (once; later calls wait for the first). */
  reconcile(): Promise<void> {
    this.reconciled ??= this.doReconcile();
    return this.reconciled;
  }

  private async doReconcile(): Promise<void> {
    let found: Awaited<ReturnType<typeof readRecords>>;
    try {
      found = await readRecords(this.opts.stateDir);
    } catch (err) {
      this.log.error(`reading recorded attachments: ${(err as Error).message}`, { op: 'reconcile', errno: errnoOf(err) });
      return;
    }
    for (const b of found.bad) this.log.warn(`ignoring unreadable attachment record ${b.file}: ${b.why}`, { op: 'reconcile' });
    const seen = new Set<string>();
    for (const rec of found.records) {
      seen.add(rec.name);
      const lg = { node: rec.name, op: 'reconcile' };
      if (this.entries.has(rec.name)) continue;
      this.log.warn(`cleaning a leftover ${rec.method} attachment${rec.device ? ` (${rec.device})` : ''} of engine pid ${rec.enginePid}`, lg);
      try {
        if (rec.device) {
          const u = await deviceUsers(this.sys, rec.device);
          if (inUse(u)) {
            this.log.error(`leftover ${rec.device} is ${describeUsers(u)}; its engine died, so its I/O already fails: unmounting it lazily`, lg);
            await this.releaseUsers(rec.name, rec.device, { ...u, mountPoints: [] }, 'leftover');
            for (const mp of u.mountPoints) {
              const r = await this.sys.run('umount', umountArgs(mp, true), { timeoutMs: this.umountTimeoutMs });
              if (r.code !== 0) this.log.error(describeRun('umount', umountArgs(mp, true), r), lg);
            }
          }
        }
        const done = await this.methods[rec.method].cleanup(rec, { mountDir: this.mountDir(rec.name), pidFile: this.pidFile(rec.name) });
        await removeRecord(this.opts.stateDir, rec.name);
        this.log.info(`leftover cleaned${done.length ? `: ${done.join(', ')}` : ' (nothing was left)'}`, lg);
      } catch (err) {
        this.log.error(`cleaning the leftover failed: ${(err as Error).message}; the record ${rec.name}.json is kept`, { ...lg, errno: errnoOf(err) });
      }
    }
    // FUSE mounts in our attach dir without a record (a crash between mount and record)
    const base = join(this.opts.runtimeDir, 'attach') + '/';
    let all: Awaited<ReturnType<typeof mounts>> = [];
    try {
      all = await mounts(this.sys);
    } catch { /* no /proc: nothing to do */ }
    for (const m of all) {
      if (!m.mountPoint.startsWith(base)) continue;
      const name = m.mountPoint.slice(base.length);
      if (!name || name.includes('/') || seen.has(name) || this.entries.has(name)) continue;
      this.log.warn(`cleaning an unrecorded FUSE mount ${m.mountPoint}`, { node: name, op: 'reconcile' });
      try {
        await this.methods.fuse.cleanup({
          name, method: 'fuse', device: null, mountDir: m.mountPoint, helperPid: null, socket: '', enginePid: 0, createdAt: 0,
        }, { mountDir: m.mountPoint, pidFile: this.pidFile(name) });
      } catch (err) {
        this.log.error(`cleaning ${m.mountPoint} failed: ${(err as Error).message}`, { node: name, op: 'reconcile' });
      }
    }
  }
}
