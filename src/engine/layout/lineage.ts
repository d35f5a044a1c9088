// A mirror's generations (issue 15): which leg's data is newest is decided by history, never by
// leg order. Pure: no I/O, the randomness is passed in.
//
// - A generation is a random 64-bit id. Whenever a leg goes behind, the legs still in sync start a
//   new one; the old one goes into the history (newest first, bounded). Each leg records the
//   generation its data is complete to (`legGen`): the current one while in sync, the one it had
//   when it went behind otherwise (its out-of-sync bits cover everything since).
// - Leg B descends from leg A's data when A's generation is B's current one or in B's history:
//   B's bits for A say what A misses. When neither contains the other's generation, both moved on
//   from a common ancestor separately: split brain, and nothing is copied without an operator's word.
// - Session numbers: every assembly takes a number above every one the legs recorded, so an
//   export can refuse an older engine (the low 16 bits are random: two engines that assemble at
//   once do not tie).

/** generations kept in the history: a leg away for more than this many new generations shares none */
export const MAX_HISTORY = 128;
export const UUID_BYTES = 16;

export interface Lineage {
  /** the mirror's identity, the same on every leg */
  uuid: Buffer;
  /** the assembly that wrote this: exports refuse older ones */
  session: bigint;
  current: bigint;
  /** earlier generations, newest first */
  history: bigint[];
  /** per leg: the generation its data is complete to (0n: nothing is known of it) */
  legGen: bigint[];
  /** per leg: the export identity that is this leg (zeroes: not known yet) */
  members: Buffer[];
}

export interface Random {
  bytes(n: number): Buffer;
}

export function randomGeneration(rnd: Random): bigint {
  let g = 0n;
  while (g === 0n) g = rnd.bytes(8).readBigUInt64BE(0);
  return g;
}

export function newLineage(legs: number, rnd: Random): Lineage {
  const current = randomGeneration(rnd);
  return {
    uuid: rnd.bytes(UUID_BYTES), session: 0n, current, history: [], legGen: new Array<bigint>(legs).fill(current),
    members: Array.from({ length: legs }, () => Buffer.alloc(UUID_BYTES)),
  };
}

/** g is this lineage's current generation or one of its ancestors */
export function contains(l: Lineage, g: bigint): boolean {
  return g !== 0n && (g === l.current || l.history.includes(g));
}

/** Start a new generation: the legs in `inSync` get it, the others keep theirs. */
export function advance(l: Lineage, inSync: readonly number[], rnd: Random): void {
  l.history.unshift(l.current);
  if (l.history.length > MAX_HISTORY) l.history.length = MAX_HISTORY;
  l.current = randomGeneration(rnd);
  for (const i of inSync) l.legGen[i] = l.current;
}

/** A session number above every one given. */
export function nextSession(seen: readonly bigint[], rnd: Random): bigint {
  const top = seen.reduce((a, b) => (b > a ? b : a), 0n) >> 16n;
  return ((top + 1n) << 16n) | BigInt(rnd.bytes(2).readUInt16BE(0));
}

export function genHex(g: bigint): string {
  return g.toString(16).padStart(16, '0');
}

/** What one leg's metadata says. */
export interface LegClaim {
  /** the leg's position in the node's config */
  leg: number;
  lineage: Lineage;
}

/** The generation leg `c.leg` holds by its own metadata. */
export function ownGeneration(c: LegClaim): bigint {
  return c.lineage.legGen[c.leg] ?? 0n;
}

export type Authority =
  | { kind: 'authority'; lineage: Lineage; from: 'record' | number }
  | { kind: 'split-brain'; legs: number[]; generations: string[] };

/**
 * The newest view among the state dir's record and the legs' metadata: the one whose history
 * contains every other view's current generation and every leg's own generation. None: split brain.
 */
export function pickAuthority(record: Lineage | null, claims: readonly LegClaim[]): Authority {
  const views: { lineage: Lineage; from: 'record' | number }[] = [
    ...(record ? [{ lineage: record, from: 'record' as const }] : []),
    ...claims.map((c) => ({ lineage: c.lineage, from: c.leg })),
  ];
  const newest = views.find((v) => views.every((w) => contains(v.lineage, w.lineage.current))
    && claims.every((c) => ownGeneration(c) === 0n || contains(v.lineage, ownGeneration(c))));
  if (newest) return { kind: 'authority', lineage: newest.lineage, from: newest.from };
  return { kind: 'split-brain', legs: claims.map((c) => c.leg), generations: claims.map((c) => genHex(ownGeneration(c))) };
}

export function cloneLineage(l: Lineage): Lineage {
  return { uuid: Buffer.from(l.uuid), session: l.session, current: l.current, history: [...l.history], legGen: [...l.legGen], members: l.members.map((m) => Buffer.from(m)) };
}

/** Leg k's recorded member identity, or null when none is recorded. */
export function memberOf(l: Lineage, k: number): Buffer | null {
  const m = l.members[k];
  return m && m.some((b) => b !== 0) ? m : null;
}
