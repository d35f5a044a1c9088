// Assembling a mirror (issue 15): from the state dir's record (if any) and what each reachable leg
// holds in its tail, decide the mirror's state — which view is newest (by generations, never by
// leg order), which legs are in sync, which copy their marked regions and which compare everything
// — or refuse, naming each leg and what it holds. Pure: the reads are done by the caller.
//
// - No record and no leg with metadata: a new mirror; leg 0 is the initial source and the others
//   compare (checksum resync copies nothing where they already match).
// - Metadata of another mirror, of this mirror with another geometry, or of this mirror with no
//   generation in common with its newest view (a leg removed by `leg del`): refused unless
//   --force-init (never implicit on a leg that belongs to a mirror); a forced leg compares.
// - The legs' metadata wins over the order the node was given: legs at other positions than their
//   metadata's index make the node reorder its legs (`reorder`) and assemble again; two legs
//   claiming one index are refused (the one the view lists by export identity keeps it).
// - No view descends from all the others: split brain; nothing is served until `--keep LEG`.
// - A leg with no usable metadata (blank, both copies torn) in an existing mirror compares.
import { DstError } from '../../util/errors.js';
import type { StartOptions } from '../types.js';
import type { LegMetaRead } from './leg-meta.js';
import {
  advance, cloneLineage, contains, genHex, memberOf, newLineage, nextSession, ownGeneration, pickAuthority, type LegClaim, type Lineage, type Random,
} from './lineage.js';
import { blankSnapshot } from './region-state.js';
import { sharesHistory, unrelatedText } from './reshape.js';
import type { MirrorSnapshot } from './state-codec.js';

/** The one-shot options of `node start` (degraded, force-init) and `node resolve` (keep). */
export type AssembleOptions = StartOptions;

/** What was found on each leg: its tail, or `away` (not reachable now). */
export type LegFound = LegMetaRead | { kind: 'away' };

export interface AssemblyInput {
  name: string;
  /** leg descriptions for messages (`leg 0 (host:port)`) */
  legNames: readonly string[];
  regionSize: number;
  /** the size the legs reached allow */
  deviceSize: number;
  record: MirrorSnapshot | null;
  found: readonly LegFound[];
  /** each leg's export identity (null: not reached) */
  identities: readonly (Buffer | null)[];
  opts: AssembleOptions;
  rnd: Random;
}

export interface Plan {
  snapshot: MirrorSnapshot;
  /** legs whose data is unknown: every region compared, copied where it differs */
  compare: number[];
  /** regions that were being written at an unclean stop (resynced from one leg to the others) */
  crashed: number[];
  /** what the log should say about the decision */
  notes: string[];
}

export type SplitBrain = { legs: number[]; generations: string[]; message: string };
/** The node's legs in the metadata's order: `order[k]` is the position of mirror leg k among them. */
export type Reorder = { kind: 'reorder'; order: number[]; note: string };
export type PlanResult = { kind: 'plan'; plan: Plan } | ({ kind: 'split-brain' } & SplitBrain) | Reorder;

function refuse(msg: string): DstError {
  return new DstError('DST_ERR_INVALID', msg, { errno: 'EINVAL' });
}

/** What leg metadata `s` (leg `index`) holds when it is not this mirror's leg (null: it is one). */
function foreign(s: MirrorSnapshot, index: number, legs: number, uuid: Buffer | null, ref: Lineage | null): string | null {
  if (uuid && !s.lineage.uuid.equals(uuid)) return `the metadata of another mirror (uuid ${s.lineage.uuid.toString('hex')}, leg ${index} of ${s.legs})`;
  if (s.legs !== legs) return `metadata of this mirror with ${s.legs} legs (the node has ${legs})`;
  if (ref && !sharesHistory(ref, s.lineage)) return unrelatedText(index, s.lineage, ref);
  return null;
}

/**
 * Leg j is the mirror's member there (by export identity) and held as unknown: its metadata was
 * not rewritten when the legs changed (it was away), so its position in it may be stale. It compares.
 */
function staleMember(live: Lineage | null, j: number, identity: Buffer | null, s: MirrorSnapshot): boolean {
  const member = live ? memberOf(live, j) : null;
  return live !== null && live.legGen[j] === 0n && member !== null && identity !== null && member.equals(identity) && s.lineage.uuid.equals(live.uuid);
}

type MetaAt = { j: number; f: Extract<LegFound, { kind: 'meta' }> };

/**
 * The view the others are judged against: the record, else the survivor kept, else the legs' view
 * of the latest assembly (a leg removed, or away too long, holds an older session and shares no
 * generation with it).
 */
function referenceView(a: AssemblyInput, keep: MetaAt | undefined, metas: readonly MetaAt[], uuid: Buffer | null): Lineage | null {
  if (a.record) return a.record.lineage;
  if (keep) return keep.f.snapshot.lineage;
  const mine = metas.map((m) => m.f.snapshot).filter((s) => s.legs === a.found.length && uuid !== null && s.lineage.uuid.equals(uuid));
  return mine.reduce<MirrorSnapshot | null>((best, s) => (best === null || s.lineage.session > best.lineage.session ? s : best), null)?.lineage ?? null;
}

/** Where each mirror leg is among the node's legs: `order[k]` is the position of leg k (claimed by its metadata, else by its export identity, else the next free one). */
function legOrder(legs: number, claims: readonly LegClaim[], at: readonly number[], identities: readonly (Buffer | null)[], ref: Lineage | null): number[] {
  const order = new Array<number>(legs).fill(-1);
  claims.forEach((c, n) => { order[c.leg] = at[n]!; });
  const free = Array.from({ length: legs }, (_, j) => j).filter((j) => !at.includes(j));
  for (let k = 0; k < legs; k++) {
    const member = order[k] === -1 && ref ? memberOf(ref, k) : null;
    const p = member ? free.findIndex((j) => identities[j]?.equals(member) === true) : -1;
    if (p >= 0) order[k] = free.splice(p, 1)[0]!;
  }
  for (let k = 0; k < legs; k++) if (order[k] === -1) order[k] = free.shift()!;
  return order;
}

/** Two legs claiming one index: the one the view lists by export identity keeps it; the others are returned (none kept: all). */
function duplicates(claims: LegClaim[], at: number[], identities: readonly (Buffer | null)[], ref: Lineage | null): { index: number; legs: number[]; kept: number | null }[] {
  const out: { index: number; legs: number[]; kept: number | null }[] = [];
  for (const index of new Set(claims.map((c) => c.leg))) {
    const legs = at.filter((_, n) => claims[n]!.leg === index);
    if (legs.length < 2) continue;
    const member = ref ? memberOf(ref, index) : null;
    const listed = member ? legs.filter((j) => identities[j]?.equals(member) === true) : [];
    out.push({ index, legs, kept: listed.length === 1 ? listed[0]! : null });
  }
  return out;
}

export function planAssembly(a: AssemblyInput): PlanResult {
  const legs = a.found.length;
  const notes: string[] = [];
  const metas: MetaAt[] = a.found.flatMap((f, j) => (f.kind === 'meta' ? [{ j, f }] : []));
  const keepMeta = a.opts.keep !== undefined ? metas.find((m) => m.j === a.opts.keep) : undefined;
  if (a.opts.keep !== undefined && !keepMeta) throw refuse(`${a.name}: --keep ${a.opts.keep}: ${a.legNames[a.opts.keep] ?? `leg ${a.opts.keep}`} has no mirror metadata to keep`);
  const uuid = a.record?.lineage.uuid ?? keepMeta?.f.snapshot.lineage.uuid ?? metas[0]?.f.snapshot.lineage.uuid ?? null;
  const ref = referenceView(a, keepMeta, metas, uuid);
  const compare = new Set<number>();
  const refused: string[] = [];
  /** `what`: what leg j is or holds, that keeps it out of the mirror */
  const initialise = (j: number, what: string): void => {
    if (a.opts.forceInit) {
      notes.push(`${a.legNames[j]} ${what}: initialised (--force-init)`);
      compare.add(j);
    } else refused.push(`${a.legNames[j]} ${what}`);
  };
  /** this mirror's legs by their metadata: `leg` is the index the metadata gives, `at` the position among the node's legs */
  const claims: LegClaim[] = [];
  const at: number[] = [];
  a.found.forEach((f, j) => {
    if (f.kind === 'blank' || f.kind === 'unreadable') {
      if (f.kind === 'unreadable') notes.push(`${a.legNames[j]}: its metadata cannot be used (${f.detail}); it compares every region`);
      compare.add(j);
      return;
    }
    if (f.kind !== 'meta') return;
    if (f.bad) notes.push(`${a.legNames[j]}: ${f.bad}; it is rewritten from the good copy`);
    const why = foreign(f.snapshot, f.index, legs, uuid, ref);
    if ((why !== null || f.index !== j) && staleMember(ref, j, a.identities[j] ?? null, f.snapshot)) {
      notes.push(`${a.legNames[j]} held ${why ?? `the metadata of leg ${f.index} of this mirror`} from before the legs changed: it compares every region`);
      compare.add(j);
    } else if (why === null) {
      claims.push({ leg: f.index, lineage: f.snapshot.lineage });
      at.push(j);
    } else initialise(j, `holds ${why}`);
  });
  for (const d of duplicates(claims, at, a.identities, ref)) {
    const names = d.legs.map((j) => a.legNames[j]).join(' and ');
    if (d.kept === null) throw refuse(`${a.name}: ${names} ${d.legs.length > 2 ? 'all' : 'both'} hold the metadata of leg ${d.index} of this mirror, and none is the export its metadata lists there; `
      + 'a copied disk? remove the wrong one from the node');
    for (const j of d.legs.filter((x) => x !== d.kept)) {
      const n = at.indexOf(j);
      claims.splice(n, 1);
      at.splice(n, 1);
      initialise(j, `holds the metadata of leg ${d.index} of this mirror, which is ${a.legNames[d.kept]} (by its export identity)`);
    }
  }
  const refuseAll = (): void => {
    if (refused.length === 0) return;
    throw refuse(`${a.name}: ${refused.join('; ')}; \`dst node start ${a.name} --force-init\` initialises ${refused.length > 1 ? 'them' : 'it'} (the data on ${refused.length > 1 ? 'them' : 'it'} is overwritten)`);
  };
  refuseAll();
  // the legs' metadata wins over the order the node was given: the node is told to reorder its legs and assemble again
  const order = legOrder(legs, claims, at, a.identities, ref);
  if (order.some((j, k) => j !== k)) {
    const moved = order.flatMap((j, k) => (j === k ? [] : [`${a.legNames[j]} is leg ${k}`]));
    return { kind: 'reorder', order, note: `${a.name}: the legs' metadata orders them otherwise than the node's config (${moved.join(', ')}): the node's legs follow the metadata` };
  }
  // a leg without this mirror's metadata must be the export the mirror has at its position: a disk
  // the metadata does not list is not one of its legs (a leg whose own metadata says it is the
  // member is one, whatever its export's identity: an export reinstalled over the same disk)
  a.identities.forEach((id, k) => {
    const member = ref ? memberOf(ref, k) : null;
    if (!id || !member || member.equals(id) || a.found[k]!.kind === 'meta') return;
    initialise(k, `is not a member of mirror ${ref!.uuid.toString('hex')} (its leg ${k} is export ${member.toString('hex')}, this is ${id.toString('hex')})`);
  });
  refuseAll();

  let base: MirrorSnapshot;
  let lineage: Lineage;
  if (keepMeta) {
    // the operator's word: the survivor's view, a new generation only it has; the others compare
    base = keepMeta.f.snapshot;
    lineage = cloneLineage(base.lineage);
    advance(lineage, [keepMeta.j], a.rnd);
    for (let j = 0; j < legs; j++) if (j !== keepMeta.j) compare.add(j);
    notes.push(`split brain resolved: ${a.legNames[keepMeta.j]} is kept; the other legs compare and copy what differs from it`);
  } else if (claims.length === 0 && !a.record) {
    lineage = newLineage(legs, a.rnd);
    base = blankSnapshot(legs, a.regionSize, a.deviceSize, lineage);
    for (let j = 1; j < legs; j++) compare.add(j);
    compare.delete(0);
    notes.push('a new mirror: leg 0 is the initial source, the other legs compare and copy what differs');
  } else {
    const auth = pickAuthority(a.record?.lineage ?? null, claims);
    if (auth.kind === 'split-brain') {
      const held = auth.legs.map((j, k) => `${a.legNames[j]} holds generation ${auth.generations[k]}`).join(', ');
      return {
        kind: 'split-brain', legs: auth.legs, generations: auth.generations,
        message: `split brain: ${held}, and neither descends from the other (they were written apart); nothing is served until \`dst node resolve ${a.name} --keep LEG\` picks the survivor`,
      };
    }
    const from = auth.from;
    base = from === 'record' ? a.record! : (a.found[from] as Extract<LegFound, { kind: 'meta' }>).snapshot;
    lineage = cloneLineage(auth.lineage);
    if (from !== 'record') notes.push(`the newest view is ${a.legNames[from]}'s (generation ${genHex(lineage.current)})`);
  }
  if (base.deviceSize > a.deviceSize) {
    throw refuse(`${a.name}: the mirror is ${base.deviceSize} bytes; the legs reached so far leave room for ${a.deviceSize}`);
  }
  if (base.regionSize !== a.regionSize) notes.push(`the mirror's region is ${base.regionSize} bytes (its metadata), not the configured ${a.regionSize}`);
  const sessions = [a.record?.lineage.session ?? 0n, ...claims.map((c) => c.lineage.session)];
  lineage.session = nextSession(sessions, a.rnd);
  a.identities.forEach((id, k) => { if (id) lineage.members[k] = Buffer.from(id); });
  const snapshot: MirrorSnapshot = { ...base, bits: base.bits.map((b) => new Uint8Array(b)), lineage };
  return { kind: 'plan', plan: { snapshot, compare: [...compare].sort((x, y) => x - y), crashed: base.clean ? [] : [...base.active], notes } };
}

/** A leg first reached after the assembly: what its tail says about it against the live lineage. */
export type LateVerdict = { kind: 'ok' } | { kind: 'compare'; note: string } | { kind: 'refuse'; message: string } | ({ kind: 'split-brain' } & SplitBrain);

export function judgeLateLeg(name: string, legName: (i: number) => string, j: number, legs: number, live: Lineage, f: LegMetaRead, forceInit: boolean,
  identity: Buffer | null): LateVerdict {
  if (f.kind === 'io-error') return { kind: 'ok' }; // read again when it is back
  const out = (what: string): LateVerdict => (forceInit
    ? { kind: 'compare', note: `${legName(j)} ${what}: initialised (--force-init)` }
    : { kind: 'refuse', message: `${name}: ${legName(j)} ${what}; \`dst node start ${name} --force-init\` initialises it` });
  const member = memberOf(live, j);
  if (f.kind !== 'meta' && member && identity && !member.equals(identity)) {
    return out(`is not a member of mirror ${live.uuid.toString('hex')} (its leg ${j} is export ${member.toString('hex')}, this is ${identity.toString('hex')})`);
  }
  if (f.kind !== 'meta') return { kind: 'compare', note: `${legName(j)}: no usable metadata; it compares every region` };
  const why = foreign(f.snapshot, f.index, legs, live.uuid, live) ?? (f.index !== j ? `the metadata of leg ${f.index} of this mirror` : null);
  if (why !== null) {
    if (staleMember(live, j, identity, f.snapshot)) return { kind: 'compare', note: `${legName(j)} held ${why} from before the legs changed: it compares every region` };
    return out(`holds ${why}`);
  }
  // a leg the mirror holds as unknown (resolved away, initialised) compares whatever it holds
  if (live.legGen[j] === 0n) return { kind: 'compare', note: `${legName(j)}: its data is not trusted; it compares every region` };
  const own = ownGeneration({ leg: j, lineage: f.snapshot.lineage });
  if (own === 0n || contains(live, own)) return { kind: 'ok' };
  // split brain between this leg and the legs in sync (the same order as SplitBrainShow: leg k, generation k)
  const k = live.legGen.findIndex((g, i) => i !== j && g === live.current);
  const sides = [...(k >= 0 ? [{ leg: k, gen: genHex(live.current) }] : []), { leg: j, gen: genHex(own) }];
  const held = sides.map((x) => `${legName(x.leg)} holds generation ${x.gen}`).join(', ');
  return {
    kind: 'split-brain', legs: sides.map((x) => x.leg), generations: sides.map((x) => x.gen),
    message: `split brain: ${held}, written apart (neither descends from the other); nothing is served until \`dst node resolve ${name} --keep LEG\` picks the survivor`,
  };
}
