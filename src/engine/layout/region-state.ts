// The mirror's live state (issue 14, 15), saved to the state dir and to every connected leg's
// metadata (leg-meta.ts) in one encoding (state-codec.ts):
// - per leg, a bitmap of regions that leg is missing (out of sync); a bit is durable before the
//   write that set it is acknowledged, and cleared (lazily saved) once the data is durable there;
// - the activity log (md's write-intent bitmap, DRBD's activity log): a region is durably marked
//   active before the first write to it goes out, and dropped lazily once it has been idle for
//   `idleMs` and flushed on every leg. After an unclean stop, the regions still marked active —
//   and only those — may differ between legs and are resynced.
// - per leg, whether its marked regions are only "unknown" (a new mirror, a leg that was another
//   disk, a leg with no usable metadata): such a leg compares digests before copying (a u32 mask:
//   at most 32 legs);
// - the lineage (lineage.ts): the mirror's uuid, the session that assembled it, its generations.
// Saves are coalesced: every mark asked for while a save runs goes into the next one. A save is
// durable when the state dir's file is replaced (tmp, fsync, rename, fsync dir) and the legs the
// mirror replicates to have the copy (written with FUA).
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../../util/clock.js';
import { DstError, errnoOf } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { writeFileAtomic } from '../atomic-file.js';
import { advance, cloneLineage, genHex, type Lineage, type Random } from './lineage.js';
import { bitmapBytes, decodeState, encodeState, regionCount, type MirrorSnapshot } from './state-codec.js';

/** cleared bits are saved at most this long after the clear (a crash before only repeats a copy) */
const LAZY_SAVE_MS = 1000;

/** A mirror node's state file; `node del` removes it, so a new node of the same name starts afresh. */
export function mirrorStatePath(stateDir: string, node: string): string {
  return join(stateDir, 'mirror', `${node}.state`);
}

/** node del: the state dir's record goes; the legs keep their metadata (a new node over them reassembles the mirror). */
export async function removeMirrorState(stateDir: string, node: string, log: Logger): Promise<void> {
  await rm(mirrorStatePath(stateDir, node), { force: true }).catch((err: unknown) => {
    log.warn(`cannot remove the mirror state: ${(err as Error).message}`, { node, op: 'node del', errno: errnoOf(err) });
  });
}

/** The state dir's record of a mirror: its snapshot, none (null), or why it cannot be used. */
export async function readMirrorRecord(file: string): Promise<MirrorSnapshot | null | string> {
  let raw: Buffer;
  try {
    raw = await readFile(file);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw new DstError('DST_ERR_IO', `mirror state: cannot read ${file}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
  }
  return decodeState(raw);
}

/** A blank snapshot: nothing marked, nothing active. */
export function blankSnapshot(legs: number, regionSize: number, deviceSize: number, lineage: Lineage): MirrorSnapshot {
  const n = bitmapBytes(deviceSize, regionSize);
  return { legs, regionSize, deviceSize, clean: true, compareMask: 0, active: [], bits: Array.from({ length: legs }, () => new Uint8Array(n)), lineage };
}

/** Region numbers first, first + 1, …, last. */
export function* regionRange(first: number, last: number): Generator<number> {
  for (let r = first; r <= last; r++) yield r;
}

export const DEFAULT_IDLE_MS = 5000;
export const DEFAULT_MAX_ACTIVE = 256;

export interface RegionStateOptions {
  file: string;
  clock: Clock;
  log: Logger;
  rnd: Random;
  /** an active region idle (and flushed) this long is dropped from the activity log */
  idleMs?: number;
  /** idle regions beyond this many are dropped at the next save even if not idle long */
  maxActive?: number;
  /** every save also goes to the legs' metadata; resolves once it is where it must be */
  replicate?: (body: Buffer) => Promise<void>;
}

interface Active {
  /** writes in flight to it */
  refs: number;
  /** a write completed that no acknowledged FLUSH has covered yet */
  unflushed: boolean;
  /** the flush epoch of its last completed write */
  releasedEpoch: number;
  idleSince: number;
}

export class RegionState {
  readonly regions: number;
  readonly legs: number;
  readonly regionSize: number;
  readonly deviceSize: number;
  private readonly bits: Uint8Array[];
  private readonly counts: number[];
  /** bit `leg`: the leg's marks are unknowns, to compare before copying */
  private compareMask: number;
  private readonly lineageNow: Lineage;
  private readonly active = new Map<number, Active>();
  /** active regions as the last save has them */
  private durableActive: Set<number>;
  private readonly idleMs: number;
  private readonly maxActive: number;
  private epoch = 0;
  /** the save running now, and whether another is wanted after it */
  private saving: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  private lazyTimer: TimerHandle | null = null;
  private idleTimer: TimerHandle | null = null;
  private saveCount = 0;
  private closed = false;

  /**
   * The live state from a snapshot (the record, a leg's metadata or a blank one). The regions the
   * snapshot has active stay active until resynced and idle again. Not saved until asked.
   */
  constructor(private readonly o: RegionStateOptions, s: MirrorSnapshot) {
    this.legs = s.legs;
    this.regionSize = s.regionSize;
    this.deviceSize = s.deviceSize;
    this.regions = regionCount(s.deviceSize, s.regionSize);
    this.bits = s.bits.map((b) => new Uint8Array(b));
    this.compareMask = s.compareMask;
    this.lineageNow = cloneLineage(s.lineage);
    this.counts = this.bits.map((_, leg) => {
      let c = 0;
      for (let r = 0; r < this.regions; r++) if (this.isOutOfSync(leg, r)) c++;
      return c;
    });
    this.idleMs = o.idleMs ?? DEFAULT_IDLE_MS;
    this.maxActive = o.maxActive ?? DEFAULT_MAX_ACTIVE;
    for (const r of s.active) this.active.set(r, { refs: 0, unflushed: true, releasedEpoch: 0, idleSince: o.clock.now() });
    this.durableActive = new Set(s.active);
  }

  /** What a save would write now. */
  snapshot(clean = false): MirrorSnapshot {
    return {
      legs: this.legs, regionSize: this.regionSize, deviceSize: this.deviceSize, clean, compareMask: this.compareMask,
      active: [...this.active.keys()], bits: this.bits, lineage: this.lineageNow,
    };
  }

  // ---- lineage ----

  get lineage(): Readonly<Lineage> {
    return this.lineageNow;
  }

  /** The generation (hex) leg's data is complete to; null when not known (it compares). */
  generationOf(leg: number): string | null {
    const g = this.lineageNow.legGen[leg] ?? 0n;
    return g === 0n ? null : genHex(g);
  }

  /** A leg went behind: the legs in `inSync` start a new generation (durable with the next save). */
  advanceGeneration(inSync: readonly number[]): void {
    advance(this.lineageNow, inSync, this.o.rnd);
  }

  /** Leg's data is now complete to the current generation (it finished its resync). */
  legCaughtUp(leg: number): Promise<void> {
    this.lineageNow.legGen[leg] = this.lineageNow.current;
    return this.requestSave();
  }

  /** Leg's export identity, recorded with the next save (a late leg accepted into the mirror). */
  setMember(leg: number, identity: Buffer): void {
    this.lineageNow.members[leg] = Buffer.from(identity);
  }

  /** Save now (an assembly's new session, a leg's metadata to refresh). */
  saveNow(): Promise<void> {
    return this.requestSave();
  }

  // ---- queries ----

  regionOf(offset: number): number {
    return Math.floor(offset / this.regionSize);
  }

  /** regions [first, last] that [offset, offset + length) touches (length ≥ 1) */
  regionsOf(offset: number, length: number): { first: number; last: number } {
    return { first: this.regionOf(offset), last: this.regionOf(offset + Math.max(1, length) - 1) };
  }

  isOutOfSync(leg: number, r: number): boolean {
    return (this.bits[leg]![r >> 3]! & (1 << (r & 7))) !== 0;
  }

  outOfSyncCount(leg: number): number {
    return this.counts[leg]!;
  }

  outOfSyncBytes(leg: number): number {
    const n = this.counts[leg]!;
    if (n === 0) return 0;
    const lastLen = this.deviceSize - (this.regions - 1) * this.regionSize;
    return n * this.regionSize - (this.isOutOfSync(leg, this.regions - 1) ? this.regionSize - lastLen : 0);
  }

  /** the first out-of-sync region of leg at or after `from`, or -1 */
  nextOutOfSync(leg: number, from: number): number {
    if (this.counts[leg] === 0) return -1;
    const b = this.bits[leg]!;
    for (let r = Math.max(0, from); r < this.regions; r++) {
      if (b[r >> 3] === 0) {
        r |= 7;
        continue;
      }
      if (this.isOutOfSync(leg, r)) return r;
    }
    return -1;
  }

  /** saves written since open (the activity log's cost shows here) */
  saves(): number {
    return this.saveCount;
  }

  activeCount(): number {
    return this.active.size;
  }

  // ---- out-of-sync bits ----

  /** Mark regions [first, last] missing on leg; durable when the promise resolves. */
  markOutOfSync(leg: number, first: number, last: number): Promise<void> {
    return this.markRegionsOutOfSync(leg, regionRange(first, last));
  }

  /** Mark the given regions (any order, repeats allowed) missing on leg; durable when the promise resolves. */
  markRegionsOutOfSync(leg: number, regions: Iterable<number>): Promise<void> {
    let changed = false;
    for (const r of regions) if (r >= 0 && r < this.regions) changed = this.set(leg, r) || changed;
    return changed ? this.requestSave() : this.durable();
  }

  /** Nothing is known of what the leg holds: every region marked, compared before it is copied. */
  markAllOutOfSync(leg: number): Promise<void> {
    const known = this.lineageNow.legGen[leg] !== 0n;
    this.lineageNow.legGen[leg] = 0n;
    return this.setAll(leg) || known ? this.requestSave() : this.durable();
  }

  /** Leg's marked regions are unknowns (compare digests first) rather than known misses. */
  compares(leg: number): boolean {
    return (this.compareMask & (1 << leg)) !== 0;
  }

  /** The region's data is durable on leg: clear its bit (saved lazily; a crash before repeats one copy). */
  clearOutOfSync(leg: number, r: number): void {
    if (!this.isOutOfSync(leg, r)) return;
    this.bits[leg]![r >> 3]! &= ~(1 << (r & 7));
    if (--this.counts[leg]! === 0) this.compareMask &= ~(1 << leg);
    this.lazyTimer ??= this.o.clock.setTimer(LAZY_SAVE_MS, () => {
      this.lazyTimer = null;
      void this.requestSave().catch((err: unknown) => this.saveFailed(err));
    });
  }

  // ---- activity log ----

  /**
   * A write to regions [first, last] is about to go out. Null when they are durably active
   * already (the hot path); otherwise a promise that resolves once they are.
   */
  activate(first: number, last: number): Promise<void> | null {
    let missing = false;
    const now = this.o.clock.now();
    for (let r = first; r <= last; r++) {
      const a = this.active.get(r);
      if (a) a.refs++;
      else this.active.set(r, { refs: 1, unflushed: false, releasedEpoch: this.epoch, idleSince: now });
      if (!this.durableActive.has(r)) missing = true;
    }
    return missing ? this.requestSave() : null;
  }

  /** The write to [first, last] completed on every leg; `durable` when it was written with FUA. */
  release(first: number, last: number, durable: boolean): void {
    const now = this.o.clock.now();
    for (let r = first; r <= last; r++) {
      const a = this.active.get(r);
      if (!a) continue;
      a.refs = Math.max(0, a.refs - 1);
      if (!durable) a.unflushed = true;
      a.releasedEpoch = this.epoch;
      a.idleSince = now;
    }
    this.armIdle();
  }

  /** A FLUSH is going out to every leg: its token covers the writes completed before it. */
  flushStarted(): number {
    return this.epoch++;
  }

  /** That FLUSH was acknowledged by every leg the data is on. */
  flushDone(token: number): void {
    for (const a of this.active.values()) if (a.refs === 0 && a.releasedEpoch <= token) a.unflushed = false;
    this.armIdle();
  }

  /** After the NBD endpoint closed and the legs drained: the final save. */
  async close(clean: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.lazyTimer?.cancel();
    this.idleTimer?.cancel();
    this.dropIdle(true);
    await this.durable().catch(() => {});
    await this.save(clean);
  }

  // ---- internals ----

  private set(leg: number, r: number): boolean {
    if (this.isOutOfSync(leg, r)) return false;
    this.bits[leg]![r >> 3]! |= 1 << (r & 7);
    this.counts[leg]!++;
    return true;
  }

  private setAll(leg: number): boolean {
    let changed = !this.compares(leg);
    this.compareMask |= 1 << leg;
    for (let r = 0; r < this.regions; r++) changed = this.set(leg, r) || changed;
    return changed;
  }

  /** Resolves once every change saved so far (or being saved) is on disk. */
  durable(): Promise<void> {
    return this.next ?? this.saving ?? Promise.resolve();
  }

  /** A save that starts after now: every change made so far is in it. */
  private requestSave(): Promise<void> {
    if (this.closed) return Promise.reject(new DstError('DST_ERR_CLOSED', `mirror state ${this.o.file}: closed`, { errno: 'ESHUTDOWN' }));
    if (this.next) return this.next;
    if (!this.saving) {
      this.saving = this.save().finally(() => { this.saving = null; });
      return this.saving;
    }
    const after = this.saving.catch(() => {});
    this.next = after.then(() => {
      this.next = null;
      this.saving = this.save().finally(() => { this.saving = null; });
      return this.saving;
    });
    return this.next;
  }

  /** Drop idle, flushed regions (and, past maxActive, idle ones of any age) from the activity log. */
  private dropIdle(all: boolean): boolean {
    const now = this.o.clock.now();
    let dropped = false;
    const over = this.active.size > this.maxActive;
    for (const [r, a] of this.active) {
      if (a.refs > 0 || a.unflushed) continue;
      if (all || over || now - a.idleSince >= this.idleMs) {
        this.active.delete(r);
        dropped = true;
      }
    }
    return dropped;
  }

  private armIdle(): void {
    if (this.idleTimer || this.closed) return;
    this.idleTimer = this.o.clock.setTimer(this.idleMs, () => {
      this.idleTimer = null;
      if (this.dropIdle(false)) void this.requestSave().catch((err: unknown) => this.saveFailed(err));
      if ([...this.active.values()].some((a) => a.refs === 0)) this.armIdle();
    });
  }

  private saveFailed(err: unknown): void {
    this.o.log.error(`mirror state: ${(err as Error)?.message ?? String(err)}`, { op: 'mirror-state', errno: errnoOf(err) ?? 'EIO' });
  }

  private async save(clean = false): Promise<void> {
    this.dropIdle(false);
    const snap = this.snapshot(clean);
    const buf = encodeState(snap);
    const active = new Set(snap.active);
    this.lazyTimer?.cancel();
    this.lazyTimer = null;
    await Promise.all([writeFileAtomic(this.o.file, buf, { where: 'mirror state save' }), this.o.replicate?.(buf)]);
    this.saveCount++;
    this.durableActive = active;
  }
}
