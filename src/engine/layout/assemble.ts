// Assembling a mirror (issue 15): from the state dir's record (if any) and what each reachable leg
// holds in its tail, decide the mirror's state — which view is newest (by generations, never by
// leg order), which legs are in sync, which copy their marked regions and which compare everything
// — or refuse, naming each leg and what it holds. Pure: the reads are done by the caller.
//
// - No record and no leg with metadata: a new mirror; leg 0 is the initial source and the others
//   compare (checksum resync copies nothing where they already match).
// - Metadata of another mirror, or of this mirror at another position or geometry: refused unless
//   --force-init (never implicit on a leg that belongs to a mirror); a forced leg compares.
// - No view descends from all the others: split brain; nothing is served until `--keep LEG`.
// - A leg with no usable metadata (blank, both copies torn) in an existing mirror compares.
import { DstError } from '../../util/errors.js';
import type { StartOptions } from '../types.js';
import type { LegMetaRead } from './leg-meta.js';
import {
  advance, cloneLineage, contains, genHex, memberOf, newLineage, nextSession, ownGeneration, pickAuthority, type LegClaim, type Lineage, type Random,
} from './lineage.js';
import { blankSnapshot } from './region-state.js';
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
export type PlanResult = { kind: 'plan'; plan: Plan } | ({ kind: 'split-brain' } & SplitBrain);

function refuse(msg: string): DstError {
  return new DstError('DST_ERR_INVALID', msg, { errno: 'EINVAL' });
}

/** Why leg j's metadata does not belong at position j of this mirror (null: it does). */
function mismatch(s: MirrorSnapshot, index: number, j: number, legs: number, uuid: Buffer | null): string | null {
  if (uuid && !s.lineage.uuid.equals(uuid)) return `the metadata of another mirror (uuid ${s.lineage.uuid.toString('hex')}, leg ${index} of ${s.legs})`;
  if (s.legs !== legs) return `metadata of this mirror with ${s.legs} legs (the node has ${legs})`;
  if (index !== j) return `the metadata of leg ${index} of this mirror`;
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

export function planAssembly(a: AssemblyInput): PlanResult {
  const legs = a.found.length;
  const notes: string[] = [];
  const metas = a.found.flatMap((f, j) => (f.kind === 'meta' ? [{ j, f }] : []));
  const keepMeta = a.opts.keep !== undefined ? metas.find((m) => m.j === a.opts.keep) : undefined;
  if (a.opts.keep !== undefined && !keepMeta) throw refuse(`${a.name}: --keep ${a.opts.keep}: ${a.legNames[a.opts.keep] ?? `leg ${a.opts.keep}`} has no mirror metadata to keep`);
  const uuid = a.record?.lineage.uuid ?? keepMeta?.f.snapshot.lineage.uuid ?? metas[0]?.f.snapshot.lineage.uuid ?? null;
  const compare = new Set<number>();
  const refused: string[] = [];
  const claims: LegClaim[] = [];
  a.found.forEach((f, j) => {
    if (f.kind === 'blank' || f.kind === 'unreadable') {
      if (f.kind === 'unreadable') notes.push(`${a.legNames[j]}: its metadata cannot be used (${f.detail}); it compares every region`);
      compare.add(j);
      return;
    }
    if (f.kind !== 'meta') return;
    if (f.bad) notes.push(`${a.legNames[j]}: ${f.bad}; it is rewritten from the good copy`);
    const why = mismatch(f.snapshot, f.index, j, legs, uuid);
    if (why === null) claims.push({ leg: j, lineage: f.snapshot.lineage });
    else if (staleMember(a.record?.lineage ?? null, j, a.identities[j] ?? null, f.snapshot)) {
      notes.push(`${a.legNames[j]} held ${why} from before the legs changed: it compares every region`);
      compare.add(j);
    } else if (a.opts.forceInit) {
      notes.push(`${a.legNames[j]} held ${why}: initialised (--force-init)`);
      compare.add(j);
    } else refused.push(`${a.legNames[j]} holds ${why}`);
  });
  // a leg without this mirror's metadata must be the export the mirror has at its position: a disk
  // the metadata does not list is not one of its legs (a leg whose own metadata says it is the
  // member is one, whatever its export's identity: an export reinstalled over the same disk)
  const ref = a.record?.lineage ?? keepMeta?.f.snapshot.lineage ?? claims[0]?.lineage ?? null;
  a.identities.forEach((id, k) => {
    const member = ref ? memberOf(ref, k) : null;
    if (!id || !member || member.equals(id) || a.found[k]!.kind === 'meta') return;
    const why = `is not a member of mirror ${ref!.uuid.toString('hex')} (its leg ${k} is export ${member.toString('hex')}, this is ${id.toString('hex')})`;
    if (a.opts.forceInit) {
      notes.push(`${a.legNames[k]} ${why}: initialised (--force-init)`);
      compare.add(k);
    } else refused.push(`${a.legNames[k]} ${why}`);
  });
  if (refused.length > 0) {
    throw refuse(`${a.name}: ${refused.join('; ')}; \`dst node start ${a.name} --force-init\` initialises ${refused.length > 1 ? 'them' : 'it'} (the data on ${refused.length > 1 ? 'them' : 'it'} is overwritten)`);
  }

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

export function judgeLateLeg(name: string, legName: string, j: number, legs: number, live: Lineage, f: LegMetaRead, forceInit: boolean,
  identity: Buffer | null): LateVerdict {
  if (f.kind === 'io-error') return { kind: 'ok' }; // read again when it is back
  const member = memberOf(live, j);
  if (f.kind !== 'meta' && member && identity && !member.equals(identity)) {
    const why = `is not a member of mirror ${live.uuid.toString('hex')} (its leg ${j} is export ${member.toString('hex')}, this is ${identity.toString('hex')})`;
    if (forceInit) return { kind: 'compare', note: `${legName} ${why}: initialised (--force-init)` };
    return { kind: 'refuse', message: `${name}: ${legName} ${why}; \`dst node start ${name} --force-init\` initialises it` };
  }
  if (f.kind !== 'meta') return { kind: 'compare', note: `${legName}: no usable metadata; it compares every region` };
  const why = mismatch(f.snapshot, f.index, j, legs, live.uuid);
  if (why !== null) {
    if (staleMember(live, j, identity, f.snapshot)) return { kind: 'compare', note: `${legName} held ${why} from before the legs changed: it compares every region` };
    if (forceInit) return { kind: 'compare', note: `${legName} held ${why}: initialised (--force-init)` };
    return { kind: 'refuse', message: `${name}: ${legName} holds ${why}; \`dst node start ${name} --force-init\` initialises it` };
  }
  // a leg the mirror holds as unknown (resolved away, initialised) compares whatever it holds
  if (live.legGen[j] === 0n) return { kind: 'compare', note: `${legName}: its data is not trusted; it compares every region` };
  const own = ownGeneration({ leg: j, lineage: f.snapshot.lineage });
  if (own === 0n || contains(live, own)) return { kind: 'ok' };
  const generations = [genHex(live.current), genHex(own)];
  return {
    kind: 'split-brain', legs: [j], generations,
    message: `split brain: ${legName} holds generation ${generations[1]}, written apart from the mirror's ${generations[0]}; nothing is served until \`dst node resolve ${name} --keep LEG\` picks the survivor`,
  };
}
