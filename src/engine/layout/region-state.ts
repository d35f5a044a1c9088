// The mirror's durable state, one file per mirror node in the state dir (issue 14):
// - per leg, a bitmap of regions that leg is missing (out of sync); a bit is durable before the
//   write that set it is acknowledged, and cleared (lazily saved) once the data is durable there;
// - the activity log (md's write-intent bitmap, DRBD's activity log): a region is durably marked
//   active before the first write to it goes out, and dropped lazily once it has been idle for
//   `idleMs` and flushed on every leg. After an unclean stop, the regions still marked active —
//   and only those — may differ between legs and are resynced.
// - per leg, whether its marked regions are only "unknown" (a new mirror, a leg that was another
//   disk, a file that could not be trusted): such a leg compares digests before copying (a u32
//   mask: at most 32 legs);
// Saves are whole-file atomic replacements (tmp, fsync, rename, fsync dir) with a CRC32, coalesced:
// every mark asked for while a save runs goes into the next one. A file that is torn or corrupt
// cannot be trusted: it opens as unclean with leg 0 as the source of everything (logged loudly).
import { crc32 } from 'node:zlib';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../../util/clock.js';
import { DstError, errnoOf } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { writeFileAtomic } from '../atomic-file.js';

const MAGIC = Buffer.from('DSTMIRR1', 'latin1');
/** 2: the compare mask (checksum resync) */
const VERSION = 2;
/** magic, version, legs, flags, region size, device size, active count, compare mask */
const HEADER = 8 + 4 + 4 + 4 + 8 + 8 + 4 + 4;
const FLAG_CLEAN = 1;
/** cleared bits are saved at most this long after the clear (a crash before only repeats a copy) */
const LAZY_SAVE_MS = 1000;

/** A mirror node's state file; `node del` removes it, so a new node of the same name starts afresh. */
export function mirrorStatePath(stateDir: string, node: string): string {
  return join(stateDir, 'mirror', `${node}.state`);
}

/** node del: a mirror's out-of-sync state belongs to that node only, so a new node of the name syncs afresh. */
export async function removeMirrorState(stateDir: string, node: string, log: Logger): Promise<void> {
  await rm(mirrorStatePath(stateDir, node), { force: true }).catch((err: unknown) => {
    log.warn(`cannot remove the mirror state: ${(err as Error).message}`, { node, op: 'node del', errno: errnoOf(err) });
  });
}

/** Region numbers first, first + 1, …, last. */
export function* regionRange(first: number, last: number): Generator<number> {
  for (let r = first; r <= last; r++) yield r;
}

export const DEFAULT_IDLE_MS = 5000;
export const DEFAULT_MAX_ACTIVE = 256;

export interface RegionStateOptions {
  file: string;
  legs: number;
  regionSize: number;
  /**
   * the size the legs reached so far allow; a mirror keeps the size its state file records (so a
   * restart with a larger leg away does not change it), and one larger than this is refused
   */
  deviceSize: number;
  clock: Clock;
  log: Logger;
  /** an active region idle (and flushed) this long is dropped from the activity log */
  idleMs?: number;
  /** idle regions beyond this many are dropped at the next save even if not idle long */
  maxActive?: number;
}

export interface OpenedRegionState {
  state: RegionState;
  /** no file (a new mirror), a clean stop, or an unclean stop / unreadable file */
  origin: 'new' | 'clean' | 'unclean';
  /** regions marked active when the engine stopped (to resync from one leg to the others) */
  crashedRegions: number[];
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
  private readonly bits: Uint8Array[];
  private readonly counts: number[];
  /** bit `leg`: the leg's marks are unknowns, to compare before copying */
  private compareMask = 0;
  private readonly active = new Map<number, Active>();
  /** active regions as the file on disk has them */
  private durableActive = new Set<number>();
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

  private constructor(private readonly o: RegionStateOptions) {
    this.regions = Math.ceil(o.deviceSize / o.regionSize);
    this.bits = Array.from({ length: o.legs }, () => new Uint8Array(Math.ceil(this.regions / 8)));
    this.counts = new Array<number>(o.legs).fill(0);
    this.idleMs = o.idleMs ?? DEFAULT_IDLE_MS;
    this.maxActive = o.maxActive ?? DEFAULT_MAX_ACTIVE;
  }

  static async open(o: RegionStateOptions): Promise<OpenedRegionState> {
    let raw: Buffer;
    try {
      raw = await readFile(o.file);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') {
        throw new DstError('DST_ERR_IO', `mirror state: cannot read ${o.file}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
      }
      const state = new RegionState(o);
      await state.save();
      return { state, origin: 'new', crashedRegions: [] };
    }
    const recorded = intact(raw) ? Number(raw.readBigUInt64BE(28)) : null;
    if (recorded !== null && recorded > o.deviceSize) {
      throw new DstError('DST_ERR_INVALID', `mirror state ${o.file}: the mirror is ${recorded} bytes, the legs reached so far leave room for ${o.deviceSize}`);
    }
    const state = new RegionState({ ...o, deviceSize: recorded ?? o.deviceSize });
    const parsed = state.load(raw);
    if (typeof parsed === 'string') {
      o.log.error(`mirror state ${o.file} cannot be used (${parsed}): leg 0 is taken as the source of every region and the other legs copy it`,
        { op: 'mirror-state', errno: 'EIO' });
      for (let leg = 1; leg < o.legs; leg++) state.setAll(leg);
      await state.save();
      return { state, origin: 'unclean', crashedRegions: [] };
    }
    // the regions active at the stop stay active until resynced and idle again
    for (const r of parsed.active) state.active.set(r, { refs: 0, unflushed: true, releasedEpoch: 0, idleSince: o.clock.now() });
    state.durableActive = new Set(parsed.active);
    await state.save();
    return { state, origin: parsed.clean ? 'clean' : 'unclean', crashedRegions: parsed.active };
  }

  // ---- queries ----

  get deviceSize(): number {
    return this.o.deviceSize;
  }

  regionOf(offset: number): number {
    return Math.floor(offset / this.o.regionSize);
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
    const lastLen = this.o.deviceSize - (this.regions - 1) * this.o.regionSize;
    return n * this.o.regionSize - (this.isOutOfSync(leg, this.regions - 1) ? this.o.regionSize - lastLen : 0);
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
    return this.setAll(leg) ? this.requestSave() : this.durable();
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

  private encode(clean: boolean): { buf: Buffer; active: Set<number> } {
    const active = new Set(this.active.keys());
    const bitmapBytes = this.bits[0]?.length ?? 0;
    const buf = Buffer.alloc(HEADER + active.size * 4 + this.o.legs * bitmapBytes + 4);
    MAGIC.copy(buf, 0);
    buf.writeUInt32BE(VERSION, 8);
    buf.writeUInt32BE(this.o.legs, 12);
    buf.writeUInt32BE(clean ? FLAG_CLEAN : 0, 16);
    buf.writeBigUInt64BE(BigInt(this.o.regionSize), 20);
    buf.writeBigUInt64BE(BigInt(this.o.deviceSize), 28);
    buf.writeUInt32BE(active.size, 36);
    buf.writeUInt32BE(this.compareMask >>> 0, 40);
    let at = HEADER;
    for (const r of active) at = buf.writeUInt32BE(r, at);
    for (const b of this.bits) at += Buffer.from(b.buffer, b.byteOffset, b.byteLength).copy(buf, at);
    buf.writeUInt32BE(crc32(buf.subarray(0, at)), at);
    return { buf, active };
  }

  /** The file's content, or why it cannot be used. */
  private load(raw: Buffer): { clean: boolean; active: number[] } | string {
    if (!intact(raw)) return 'not a dst mirror state file, or its checksum does not match';
    if (raw.readUInt32BE(8) !== VERSION) return `version ${raw.readUInt32BE(8)}, expected ${VERSION}`;
    const legs = raw.readUInt32BE(12);
    const regionSize = Number(raw.readBigUInt64BE(20));
    const deviceSize = Number(raw.readBigUInt64BE(28));
    if (legs !== this.o.legs || regionSize !== this.o.regionSize || deviceSize !== this.o.deviceSize) {
      return `it is for ${legs} legs, region ${regionSize}, size ${deviceSize}; the node has ${this.o.legs}, ${this.o.regionSize}, ${this.o.deviceSize}`;
    }
    const n = raw.readUInt32BE(36);
    this.compareMask = raw.readUInt32BE(40) | 0;
    const bitmapBytes = this.bits[0]?.length ?? 0;
    if (raw.length !== HEADER + n * 4 + legs * bitmapBytes + 4) return 'wrong length';
    const active: number[] = [];
    let at = HEADER;
    for (let i = 0; i < n; i++, at += 4) {
      const r = raw.readUInt32BE(at);
      if (r >= this.regions) return `active region ${r} out of range`;
      active.push(r);
    }
    for (let leg = 0; leg < legs; leg++, at += bitmapBytes) {
      raw.copy(this.bits[leg]!, 0, at, at + bitmapBytes);
      let c = 0;
      for (let r = 0; r < this.regions; r++) if (this.isOutOfSync(leg, r)) c++;
      this.counts[leg] = c;
    }
    return { clean: (raw.readUInt32BE(16) & FLAG_CLEAN) !== 0, active };
  }

  private async save(clean = false): Promise<void> {
    this.dropIdle(false);
    const { buf, active } = this.encode(clean);
    this.lazyTimer?.cancel();
    this.lazyTimer = null;
    await writeFileAtomic(this.o.file, buf, { where: 'mirror state save' });
    this.saveCount++;
    this.durableActive = active;
  }
}

/** The file has our magic and its checksum matches. */
function intact(raw: Buffer): boolean {
  return raw.length >= HEADER + 4 && raw.subarray(0, 8).equals(MAGIC) && crc32(raw.subarray(0, raw.length - 4)) === raw.readUInt32BE(raw.length - 4);
}
