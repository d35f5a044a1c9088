// Changing a running mirror's legs (issue 15: `node leg add` / `node leg del`): the mirror's
// state with one leg appended or removed, and the verdict on an export offered as a new leg.
// Pure: the caller reads the legs' tails and writes the result to the legs and the state dir.
//
// - Removing a leg renumbers the legs after it and starts a new generation that shares nothing
//   with the old ones: the legs that stay get fresh generation ids (written to their metadata in
//   the same step), so the removed leg's metadata has no generation in common with the mirror and
//   can never be taken for one of its legs again without --force-init.
// - A leg whose metadata cannot be rewritten now (not connected) keeps old metadata: the mirror
//   holds it as unknown (generation 0, every region marked, compare), and assembly takes it back
//   by its export identity (assemble.ts).
// - An appended leg is unknown: it compares every region against an in-sync leg and copies what
//   differs (a new sparse file copies only the regions that hold data).
import { DstError } from '../../util/errors.js';
import { cloneLineage, contains, genHex, randomGeneration, type Lineage, type Random } from './lineage.js';
import type { LegMetaRead } from './leg-meta.js';
import { bitmapBytes, regionCount, type MirrorSnapshot } from './state-codec.js';

/** A bitmap with every region of the mirror marked. */
function allMarked(s: MirrorSnapshot): Uint8Array {
  const bits = new Uint8Array(bitmapBytes(s.deviceSize, s.regionSize));
  const n = regionCount(s.deviceSize, s.regionSize);
  for (let r = 0; r < n; r++) bits[r >> 3]! |= 1 << (r & 7);
  return bits;
}

function nothingMarked(b: Uint8Array): boolean {
  return b.every((x) => x === 0);
}

/** The compare mask with bit `from[k]` moved to bit k. */
function remapMask(mask: number, from: readonly number[]): number {
  return from.reduce((m, old, k) => ((mask & (1 << old)) !== 0 ? m | (1 << k) : m), 0);
}

/** Leg j of `s` is unknown from now on: it compares every region before it serves. */
export function heldUnknown(s: MirrorSnapshot, j: number): void {
  s.bits[j] = allMarked(s);
  s.compareMask |= 1 << j;
  s.lineage.legGen[j] = 0n;
}

export interface Removal {
  snapshot: MirrorSnapshot;
  notes: string[];
}

/**
 * `s` without leg `k`. `connected[j]` (new numbering): the leg's metadata is rewritten now. With
 * `force`, removing the last in-sync leg makes the first connected leg that stays the source as
 * it is (what it missed is lost, and said so).
 */
export function withoutLeg(s: MirrorSnapshot, k: number, connected: readonly boolean[], force: boolean, rnd: Random): Removal {
  const keep = Array.from({ length: s.legs }, (_, i) => i).filter((i) => i !== k);
  const notes: string[] = [];
  const old = s.lineage;
  const lineage: Lineage = {
    ...cloneLineage(old), current: randomGeneration(rnd), history: [],
    legGen: keep.map((i) => old.legGen[i]!), members: keep.map((i) => Buffer.from(old.members[i]!)),
  };
  const out: MirrorSnapshot = {
    ...s, legs: keep.length, bits: keep.map((i) => new Uint8Array(s.bits[i]!)), compareMask: remapMask(s.compareMask, keep), lineage,
  };
  const inSync = (j: number): boolean => nothingMarked(out.bits[j]!) && connected[j] === true;
  if (!keep.some((_, j) => inSync(j))) {
    const source = keep.findIndex((_, j) => connected[j] === true);
    if (!force || source < 0) {
      throw new DstError('DST_ERR_INVALID', `removing leg ${k} leaves no connected leg in sync${source < 0 ? '' : ' (--force makes the first connected leg the source as it is)'}`, { errno: 'EINVAL' });
    }
    notes.push(`leg ${source} (was leg ${keep[source]}) is the source as it is (--force): the regions it missed are lost; the other legs compare against it`);
    out.bits[source] = new Uint8Array(out.bits[source]!.length);
    out.compareMask &= ~(1 << source);
    // the others' bits were relative to data that is gone: they compare everything against the source
    keep.forEach((_, j) => { if (j !== source) heldUnknown(out, j); });
  }
  keep.forEach((_, j) => {
    if (!connected[j] || lineage.legGen[j] === 0n) heldUnknown(out, j);
    else if (inSync(j)) lineage.legGen[j] = lineage.current;
    else {
      // a leg that stays behind keeps its bits: its generation gets a fresh name the history holds
      const g = randomGeneration(rnd);
      lineage.history.push(g);
      lineage.legGen[j] = g;
    }
  });
  return { snapshot: out, notes };
}

/** `s` with one unknown leg appended (it compares every region; its export identity is learnt at assembly). */
export function withLeg(s: MirrorSnapshot): MirrorSnapshot {
  const lineage = cloneLineage(s.lineage);
  lineage.legGen.push(0n);
  lineage.members.push(Buffer.alloc(lineage.uuid.length));
  const out: MirrorSnapshot = { ...s, legs: s.legs + 1, bits: [...s.bits.map((b) => new Uint8Array(b)), new Uint8Array(0)], lineage };
  heldUnknown(out, s.legs);
  return out;
}

/** The two views share a generation: one descends from the other, or both from a common ancestor. */
export function sharesHistory(a: Lineage, b: Lineage): boolean {
  return contains(a, b.current) || b.history.some((g) => contains(a, g));
}

/** What a leg holds whose view (leg `index` of `l`) shares no generation with the mirror's `live` one. */
export function unrelatedText(index: number, l: Lineage, live: Lineage): string {
  return `this mirror's metadata from before it was removed (leg ${index}, generation ${genHex(l.legGen[index] ?? 0n)}; `
    + `no history in common with the mirror now, at generation ${genHex(live.current)})`;
}

export type NewLegVerdict = { kind: 'ok'; note: string | null; wipe: boolean } | { kind: 'refuse'; message: string };

/** An export offered as a new leg: what its tail holds decides whether it may be overwritten. */
export function judgeNewLeg(legName: string, live: Lineage, f: LegMetaRead, forceInit: boolean): NewLegVerdict {
  if (f.kind === 'io-error') return { kind: 'refuse', message: `${legName}: its metadata cannot be read (the export did not answer)` };
  if (f.kind === 'blank') return { kind: 'ok', note: null, wipe: false };
  if (f.kind === 'unreadable') return { kind: 'ok', note: `${legName}: no usable metadata (${f.detail}); it compares every region`, wipe: true };
  const l = f.snapshot.lineage;
  const held = !l.uuid.equals(live.uuid)
    ? `the metadata of another mirror (uuid ${l.uuid.toString('hex')}, leg ${f.index} of ${f.snapshot.legs})`
    : sharesHistory(live, l)
      ? `this mirror's metadata (leg ${f.index} of ${f.snapshot.legs}, generation ${genHex(l.legGen[f.index] ?? 0n)}): it is one of its legs`
      : unrelatedText(f.index, l, live);
  if (forceInit) return { kind: 'ok', note: `${legName} held ${held}: initialised (--force-init)`, wipe: true };
  return { kind: 'refuse', message: `${legName} holds ${held}; --force-init initialises it (its data is overwritten)` };
}
