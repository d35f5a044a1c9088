// The mirror (network RAID 1, issue 14): every write goes to every leg that is in sync or
// resyncing and is answered once all of them did (DRBD's protocol C); reads go to one in-sync leg.
// What makes it better than md over two block devices is that it knows the legs' transactions:
//
// - A slow leg is not a dead leg: a leg that has not answered within leg-timeout (or answered with
//   an error) while another in-sync leg succeeded goes `behind`; the regions of that write — and
//   of every write while it is away — are marked out of sync for it (durably, before the write is
//   acknowledged), its pending transactions are abandoned and it reconnects with the same session
//   id, so the export's fencing settles the old socket before anything new (a resync write) lands.
//   The last in-sync leg is never sent behind: its errors and waits are the device's, as a single
//   remote's are.
// - A returning leg copies back only its marked regions (resync.ts), each under the range lock
//   that writes take, from an in-sync leg, written with FUA before its bit is cleared; the bitmap
//   is in the state dir, so a restart resumes where it stopped.
// - The activity log (region-state.ts) marks a region before the first write to it goes out; after
//   an unclean stop only those regions are resynced, from one leg to the others.
// - An export that restarted (a new instance id in HELLO_REPLY) may have lost what it never
//   flushed: its leg goes behind with every region written since its last completed FLUSH.
//
// Reads are balanced by outstanding requests per leg (cheap, and it follows a slow leg at once,
// where a latency average lags); a read that fails or times out is retried on another leg. A block
// status is answered like a read, by one in-sync leg. Thin requests never let legs differ (issue
// 16): a TRIM is sent to every leg as zeroes without NO_HOLE (a hole where the leg can punch one,
// zeroes written where it cannot); a FAST_ZERO is refused (ENOTSUP, no leg touched) unless every
// leg's export honours it, and one that a leg still declines is done the slow way on that leg
// (declined by all: ENOTSUP, nothing changed).
import type { Logger } from '../../util/log.js';
import { releasePayload } from '../io/payload-pool.js';
import { legTimeoutOf } from '../policy.js';
import type { BlockDone, BlockRequest } from '../remote/target.js';
import { ZeroFlag } from '../../protocol/thin.js';
import type { EventFields, EventName, LegState, NodeContext, Policy, VerifyOptions, VerifyReport, VerifyShow } from '../types.js';
import { InflightGate, type Device, type DeviceHealth, type LegSync } from './device.js';
import type { LegPort } from './leg-port.js';
import { RangeLock } from './range-lock.js';
import type { AssembleOptions, SplitBrain } from './assemble.js';
import type { MetaSync } from './meta-sync.js';
import type { Lineage } from './lineage.js';
import { type RegionState, regionRange } from './region-state.js';
import { Resync, type LegMode as Mode } from './resync.js';
import { Verifier } from './verify.js';

export interface MirrorOptions {
  ports: LegPort[];
  /** the size the legs reached so far allow (a mirror keeps the size it was created with) */
  size: number;
  region: number;
  ctx: NodeContext;
  log: Logger;
  name: string;
  policy: () => Policy;
  emit: (event: EventName, fields: EventFields) => void;
  /** a leg's state or the device's health moved */
  changed: () => void;
  /** `leg 0 (host:port)`, for messages */
  legNames: readonly string[];
  /** the one-shot options of this start */
  assemble: AssembleOptions;
  /** a leg was found written apart from the mirror: nothing may be served */
  splitBrain: (s: SplitBrain) => void;
}

/** One write (or trim/zeroes) or flush fanned out to legs, answered once. */
interface FanOut {
  req: BlockRequest;
  /** legs it was sent to and that have not answered */
  pending: Set<number>;
  ok: Set<number>;
  failed: Set<number>;
  /** legs that answered a FAST_ZERO with ENOTSUP (they changed nothing) */
  declined: Set<number>;
  errno: string | null;
  timedOut: boolean;
  /** leg-timeout passed: legs still pending when an in-sync leg succeeds are abandoned */
  timer: { cancel(): void } | null;
  finish: () => void;
}

export class Mirror implements Device {
  readonly size: number;
  private readonly mode: Mode[];
  private readonly lock = new RangeLock();
  private readonly gate: InflightGate;
  private closed = false;
  /** regions written to each leg since its last completed FLUSH (lost if the export restarts) */
  private readonly unflushed: Set<number>[];
  /** the export instance each leg last answered from */
  private readonly instances: (Buffer | null)[];
  private readonly resync: Resync;
  private readonly verifier: Verifier;
  /** why each leg last changed mode */
  private readonly reasons: (string | null)[];

  constructor(private readonly o: MirrorOptions, private readonly rs: RegionState, private readonly meta: MetaSync) {
    this.size = rs.deviceSize;
    this.gate = new InflightGate(() => o.policy().maxInflight);
    const n = o.ports.length;
    this.mode = o.ports.map((_, i) => (rs.outOfSyncCount(i) === 0 ? 'in-sync' : 'behind'));
    this.unflushed = o.ports.map(() => new Set<number>());
    this.instances = o.ports.map((p) => p.leg.instance ? Buffer.from(p.leg.instance) : null);
    const common = {
      ports: o.ports, lock: this.lock, size: this.size, regionSize: o.region, clock: o.ctx.clock, log: o.log,
      policy: o.policy, emit: o.emit, isClosed: () => this.closed,
      legTimedOut: (i: number) => void this.markBehind(i, [], 'leg-timeout').catch((err: unknown) => this.saveFailed(err)),
    };
    this.resync = new Resync({
      ...common, rs,
      modeOf: (i) => this.mode[i]!,
      setMode: (i, to, reason) => this.setMode(i, to, reason),
      sourceFor: (i, r) => this.inSync().find((j) => j !== i && !rs.isOutOfSync(j, r) && this.leg(j).phase === 'ready'),
    });
    this.verifier = new Verifier({ ...common, inSyncReady: () => this.inSync().filter((i) => this.leg(i).phase === 'ready') });
    this.reasons = new Array<string | null>(n).fill(null);
    for (let i = 0; i < n; i++) this.legPhaseChanged(i);
  }

  private get clock(): NodeContext['clock'] {
    return this.o.ctx.clock;
  }

  private leg(i: number): LegPort['leg'] {
    return this.o.ports[i]!.leg;
  }

  /** the leg can take requests: not failed, its size known, its tail read in this run */
  private usable(i: number): boolean {
    const l = this.leg(i);
    return l.phase !== 'failed' && l.sizeBytes !== null && this.meta.isChecked(i);
  }

  // ---- what the legs' metadata asks of the mirror (meta-sync.ts) ----

  isClosed(): boolean {
    return this.closed;
  }

  isInSync(i: number): boolean {
    return this.mode[i] === 'in-sync';
  }

  metaCopyFailed(i: number): void {
    void this.markBehind(i, [], 'metadata-write-failed').catch((err: unknown) => this.saveFailed(err));
  }

  /** Leg i holds unknown data: every region compared before it serves. */
  async legUnknown(i: number): Promise<void> {
    await this.rs.markAllOutOfSync(i);
    if (this.mode[i] !== 'behind') this.setMode(i, 'behind', 'unknown-data');
  }

  // ---- states ----

  legState(i: number): LegState {
    const l = this.leg(i);
    if (l.phase === 'failed') return 'failed';
    if (l.sizeBytes === null) return 'connecting';
    return this.mode[i]!;
  }

  legReason(i: number): string | null {
    const l = this.leg(i);
    return l.phase === 'failed' || l.phase === 'backoff' ? l.reason : this.reasons[i]!;
  }

  private setMode(i: number, to: Mode, reason: string | null): void {
    const from = this.legState(i);
    this.mode[i] = to;
    const now = this.legState(i);
    if (now === from) return;
    this.reasons[i] = reason;
    if (now === 'in-sync') void this.rs.legCaughtUp(i).catch((err: unknown) => this.saveFailed(err));
    this.o.log.info(`leg ${i}: ${from} → ${now}${reason ? ` (${reason})` : ''}`, { op: 'leg-state', leg: i });
    this.o.changed(); // the node reports leg-state
  }

  /** in-sync legs that can still serve (not failed) */
  private inSync(): number[] {
    return this.o.ports.flatMap((_, i) => (this.mode[i] === 'in-sync' && this.usable(i) ? [i] : []));
  }

  health(): DeviceHealth {
    // an in-sync leg that has not connected in this run yet still holds the data: wait for it
    const live = this.o.ports.flatMap((_, i) => (this.mode[i] === 'in-sync' && this.leg(i).phase !== 'failed' ? [i] : []));
    if (live.length === 0) return 'failed';
    return live.some((i) => this.leg(i).phase === 'ready' && this.usable(i)) ? 'ready' : 'backoff';
  }

  degraded(): boolean {
    return this.o.ports.some((_, i) => this.legState(i) !== 'in-sync');
  }

  legSync(i: number): LegSync {
    return { outOfSyncBytes: this.rs.outOfSyncBytes(i), generation: this.rs.generationOf(i), ...this.resync.show(i) };
  }

  verify(o: VerifyOptions): Promise<VerifyReport> {
    return this.verifier.run(o);
  }

  lineage(): Lineage {
    return this.rs.lineage;
  }

  verifyShow(): VerifyShow | null {
    return this.verifier.show();
  }

  legPhaseChanged(i: number): void {
    if (this.closed) return;
    const port = this.o.ports[i]!;
    const leg = port.leg;
    if (leg.phase === 'failed') {
      port.failWaiting('EIO');
      // never trust a leg that was the wrong disk: if it comes back, it copies everything
      void this.rs.markAllOutOfSync(i).catch((err: unknown) => this.saveFailed(err));
      if (this.mode[i] !== 'behind') this.setMode(i, 'behind', leg.reason);
      this.o.changed();
      return;
    }
    port.kick();
    if (leg.phase !== 'ready') {
      this.o.changed();
      return;
    }
    if (!this.meta.isChecked(i)) {
      // first reached after the assembly: its tail is judged before anything is written to it
      void this.meta.legReady(i).then((ok) => { if (ok) this.legPhaseChanged(i); }, (err: unknown) => this.saveFailed(err));
      return;
    }
    void this.meta.legReady(i);
    if (leg.sizeBytes !== null && leg.sizeBytes < this.size) {
      leg.fail('size-too-small', `the leg has ${leg.sizeBytes} bytes, the mirror needs ${this.size}`);
      return;
    }
    const seen = this.instances[i];
    const now = leg.instance;
    if (now !== null && seen !== null && !seen.equals(now) && this.unflushed[i]!.size > 0) {
      // the export restarted: what it had not flushed may be gone
      void this.markBehind(i, [...this.unflushed[i]!], 'new-instance');
    }
    if (now !== null) this.instances[i] = Buffer.from(now);
    // this leg, and any behind leg that had no source while this one was away
    for (let j = 0; j < this.o.ports.length; j++) {
      if (this.mode[j] === 'behind' && this.leg(j).phase === 'ready' && this.usable(j)) void this.resync.run(j);
    }
    this.o.changed();
  }

  policyChanged(): void {
    this.gate.wake();
    this.verifier.policyChanged();
  }

  // ---- requests ----

  maxRequest(): number {
    const live = this.o.ports.filter((_, i) => this.usable(i));
    return Math.min(...(live.length > 0 ? live : this.o.ports).map((p) => p.leg.maxRequest()));
  }

  maxZeroRequest(): number {
    // as for writes: the activity log marks every region of a request before it goes out
    return this.maxRequest();
  }

  fastZero(): boolean {
    return this.o.ports.every((p) => p.leg.fastZero());
  }

  hasCapacity(): boolean {
    return this.gate.hasCapacity();
  }

  onCapacity(listener: () => void): () => void {
    return this.gate.onCapacity(listener);
  }

  inflight(): number {
    return this.gate.inflight();
  }

  submit(req: BlockRequest, done: BlockDone): void {
    // the applications' latency, submit → done, is what the resync pace keeps low
    const t0 = this.clock.now();
    const finish = this.gate.enter((errno, data) => {
      this.resync.appLatency(this.clock.now() - t0);
      done(errno, data);
    });
    // a FAST_ZERO some leg cannot honour would be slow there: refused before any leg is touched
    if (req.op === 'write-zeroes' && ((req.zeroFlags ?? 0) & ZeroFlag.FAST_ZERO) !== 0 && !this.fastZero()) queueMicrotask(() => finish('ENOTSUP', null));
    // extents come from one in-sync leg, a read's data from one leg that holds the range
    else if (req.op === 'read' || req.op === 'block-status') this.read(req, finish, new Set(), null);
    else if (req.op === 'flush') this.flush(req, finish);
    // a TRIM must leave every leg reading the same: each leg zeroes (punching a hole where it can)
    else if (req.op === 'trim') this.write({ ...req, op: 'write-zeroes', zeroFlags: 0 }, finish);
    else this.write(req, finish);
  }

  // ---- reads ----

  /**
   * Legs that hold [offset, offset + length) now: in sync, or (for data) resyncing with those
   * regions copied. Extents only from in-sync legs (README: a resyncing leg's allocation may differ).
   */
  private readable(req: BlockRequest): number[] {
    const { first, last } = this.rs.regionsOf(req.offset, Math.max(1, req.length));
    return this.o.ports.flatMap((_, i) => {
      if (!this.usable(i) || this.mode[i] === 'behind') return [];
      if (this.mode[i] === 'resyncing') {
        if (req.op === 'block-status') return [];
        for (let r = first; r <= last; r++) if (this.rs.isOutOfSync(i, r)) return [];
      }
      return [i];
    });
  }

  private read(req: BlockRequest, done: BlockDone, tried: Set<number>, lastErrno: string | null): void {
    const candidates = this.readable(req).filter((i) => !tried.has(i));
    if (candidates.length === 0) {
      queueMicrotask(() => done(lastErrno ?? 'EIO', null));
      return;
    }
    // connected legs first, then the fewest outstanding requests
    let pick = candidates[0]!;
    for (const i of candidates) {
      const a = this.o.ports[i]!;
      const b = this.o.ports[pick]!;
      const aReady = a.leg.phase === 'ready';
      const bReady = b.leg.phase === 'ready';
      if ((aReady && !bReady) || (aReady === bReady && a.outstanding < b.outstanding)) pick = i;
    }
    tried.add(pick);
    let answered = false;
    const others = candidates.length > 1;
    const timer = others ? this.clock.setTimer(legTimeoutOf(this.o.policy()), () => {
      if (answered) return;
      answered = true;
      // the leg is slow and another can serve: it goes behind only if it is not the last in sync
      if (this.mode[pick] === 'in-sync' && this.inSync().length > 1) void this.markBehind(pick, [], 'leg-timeout');
      this.read(req, done, tried, 'ETIMEDOUT');
    }) : null;
    this.o.ports[pick]!.send(req, (errno, data) => {
      if (answered) {
        if (errno === null) releasePayload(data);
        return;
      }
      answered = true;
      timer?.cancel();
      if (errno === null) done(null, data);
      else this.read(req, done, tried, errno);
    });
  }

  // ---- writes ----

  private write(req: BlockRequest, done: BlockDone): void {
    const { first, last } = this.rs.regionsOf(req.offset, Math.max(1, req.length));
    this.lock.acquire(req.offset, req.offset + Math.max(1, req.length), (held) => {
      const unlock = (errno: string | null): void => {
        this.rs.release(first, last, req.fua);
        this.lock.release(held);
        done(errno, null);
      };
      const go = (): void => this.fanOut(req, first, last, unlock);
      let active: Promise<void> | null;
      try {
        active = this.rs.activate(first, last);
      } catch (err) {
        this.lock.release(held);
        this.saveFailed(err);
        queueMicrotask(() => done('EIO', null));
        return;
      }
      if (active === null) go();
      else active.then(go, (err: unknown) => {
        this.saveFailed(err);
        this.rs.release(first, last, false);
        this.lock.release(held);
        done('EIO', null);
      });
    });
  }

  private fanOut(req: BlockRequest, first: number, last: number, done: (errno: string | null) => void): void {
    const targets = this.o.ports.flatMap((_, i) => (this.usable(i) && this.mode[i] !== 'behind' ? [i] : []));
    const f = this.startFanOut(req, targets, () => {
      if (f.declined.size > 0) {
        // FAST_ZERO declined everywhere: nothing changed, the client zeroes by itself. Declined by
        // some legs only: they zero the slow way, so that every leg reads the same.
        if (f.ok.size === 0 && f.failed.size === 0 && !f.timedOut) {
          done('ENOTSUP');
          return;
        }
        const declined = [...f.declined];
        f.declined.clear();
        const slow = this.startFanOut({ ...req, zeroFlags: (req.zeroFlags ?? 0) & ~ZeroFlag.FAST_ZERO }, declined, () => {
          for (const i of slow.ok) f.ok.add(i);
          for (const i of slow.failed) f.failed.add(i);
          f.errno ??= slow.errno;
          f.timedOut ||= slow.timedOut;
          f.finish();
        });
        return;
      }
      if (![...f.ok].some((i) => this.mode[i] === 'in-sync')) {
        // no in-sync leg has it: the device's error, as a single remote's. Legs that are not in
        // sync may have it, so their regions are marked and they copy them back from an in-sync leg.
        const maybe = targets.filter((i) => this.mode[i] !== 'in-sync');
        Promise.all(maybe.map((i) => this.markBehind(i, regionRange(first, last), 'write-failed')))
          .catch((err: unknown) => this.saveFailed(err))
          .finally(() => done(f.errno ?? 'EIO'));
        return;
      }
      for (const i of f.ok) if (!req.fua) for (let r = first; r <= last; r++) this.unflushed[i]!.add(r);
      // every leg that does not have this write now has its regions marked before the ack
      const missing = this.o.ports.flatMap((_, i) => (f.ok.has(i) ? [] : [i]));
      const why = (i: number): string => (f.failed.has(i) ? 'write-failed' : f.timedOut && targets.includes(i) ? 'leg-timeout' : 'away');
      Promise.all(missing.map((i) => this.markBehind(i, regionRange(first, last), why(i))))
        .then(() => done(null), (err: unknown) => {
          this.saveFailed(err);
          done('EIO');
        });
    });
  }

  private flush(req: BlockRequest, done: BlockDone): void {
    const targets = this.o.ports.flatMap((_, i) => (this.usable(i) && this.mode[i] !== 'behind' ? [i] : []));
    // what each leg had unflushed when this FLUSH went out is durable there once it answers
    const snapshot = targets.map((i) => [...this.unflushed[i]!]);
    const token = this.rs.flushStarted();
    const f = this.startFanOut(req, targets, () => {
      const okInSync = [...f.ok].filter((i) => this.mode[i] === 'in-sync');
      if (okInSync.length === 0) {
        done(f.errno ?? 'EIO', null);
        return;
      }
      // every leg that has the data flushed it (the others go behind with those regions marked)
      this.rs.flushDone(token);
      targets.forEach((i, k) => {
        if (f.ok.has(i)) for (const r of snapshot[k]!) this.unflushed[i]!.delete(r);
      });
      const missing = targets.filter((i) => !f.ok.has(i));
      Promise.all(missing.map((i) => this.markBehind(i, [...this.unflushed[i]!], f.failed.has(i) ? 'flush-failed' : 'leg-timeout')))
        .then(() => done(null, null), (err: unknown) => {
          this.saveFailed(err);
          done('EIO', null);
        });
    });
  }

  /**
   * Send `req` to `targets`; `complete` runs once every target answered or was abandoned. After
   * leg-timeout, legs still silent are abandoned as soon as an in-sync leg has succeeded.
   */
  private startFanOut(req: BlockRequest, targets: number[], complete: () => void): FanOut {
    const f: FanOut = {
      req, pending: new Set(targets), ok: new Set(), failed: new Set(), declined: new Set(), errno: null, timedOut: false, timer: null,
      finish: () => {
        if (f.pending.size > 0) return;
        f.timer?.cancel();
        f.timer = null;
        complete();
      },
    };
    const abandonSlow = (): void => {
      if (!f.timedOut || ![...f.ok].some((i) => this.mode[i] === 'in-sync')) return;
      for (const i of [...f.pending]) {
        f.pending.delete(i);
        this.o.log.warn(`leg ${i}: no answer to ${req.op} within ${legTimeoutOf(this.o.policy())} ms; it goes behind`, { op: req.op, leg: i });
      }
      f.finish();
    };
    if (targets.length === 0) {
      queueMicrotask(() => f.finish());
      return f;
    }
    if (targets.length > 1) {
      f.timer = this.clock.setTimer(legTimeoutOf(this.o.policy()), () => {
        f.timer = null;
        f.timedOut = true;
        abandonSlow();
      });
    }
    const fastZero = req.op === 'write-zeroes' && ((req.zeroFlags ?? 0) & ZeroFlag.FAST_ZERO) !== 0;
    for (const i of targets) {
      this.o.ports[i]!.send(req, (errno) => {
        if (!f.pending.delete(i)) return; // abandoned: its regions are marked already
        if (errno === null) f.ok.add(i);
        else if (errno === 'ENOTSUP' && fastZero) f.declined.add(i);
        else {
          f.failed.add(i);
          f.errno ??= errno;
        }
        abandonSlow();
        f.finish();
      });
    }
    return f;
  }

  /**
   * Leg i misses `regions`: mark them (durable when this resolves) and, if it was in sync or
   * resyncing, send it behind — unless it is the last in-sync leg, which never goes behind.
   */
  private async markBehind(i: number, regions: Iterable<number>, reason: string): Promise<void> {
    if (this.mode[i] === 'in-sync' && this.inSync().length <= 1 && this.usable(i)) return;
    if (this.mode[i] !== 'behind') {
      const wasInSync = this.mode[i] === 'in-sync';
      this.setMode(i, 'behind', reason);
      // the legs still in sync start a new generation: the one this leg has is an ancestor of it
      if (wasInSync) this.rs.advanceGeneration(this.inSync());
      this.resync.stopped(i);
      // what the leg still has in flight is abandoned (never replayed); it reconnects with the
      // same session id, so the export fences the old socket before a resync write can land
      if (this.leg(i).phase !== 'failed') this.leg(i).abandon(reason);
      regions = [...regions, ...this.unflushed[i]!];
      this.unflushed[i]!.clear();
    }
    await this.rs.markRegionsOutOfSync(i, regions);
  }

  private saveFailed(err: unknown): void {
    this.o.log.error(`mirror state: ${(err as Error)?.message ?? String(err)}`, { op: 'mirror-state', errno: 'EIO' });
  }

  // ---- close ----

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.verifier.close();
    for (const p of this.o.ports) p.failWaiting('ESHUTDOWN');
    await this.rs.close(this.gate.inflight() === 0);
  }
}
