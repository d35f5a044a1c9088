// Replacing a mirror's leg while it serves (issue 15): `node leg add` and `node leg del`.
//
//   leg add: the export offered is reached first (a probe link of its own) and its tail judged —
//            another mirror's metadata, or this mirror's from before it was removed, is refused
//            unless --force-init (which blanks it) — so a refused add changes nothing.
//   both:    the device pauses (the NBD side stops reading requests; those in flight finish) and
//            closes, its state saved; the new state (reshape.ts) goes to every connected leg's
//            metadata, then to the state dir; the new config is committed; the legs reconnect
//            and the mirror reassembles from what they now hold. The applications see a pause.
//
// A leg appended compares every region against an in-sync leg in the background and is in sync
// once it matches; the legs after one removed are renumbered.
import { randomBytes } from 'node:crypto';
import { DstError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { formatLegSpec } from '../../util/parse.js';
import { writeFileAtomic } from '../atomic-file.js';
import type { Reorder } from '../layout/assemble.js';
import type { Device } from '../layout/device.js';
import type { LegIoHost } from '../layout/leg-io.js';
import { MetaReplica, rewriteMeta, wipeMeta } from '../layout/leg-meta.js';
import { LegPort } from '../layout/leg-port.js';
import type { Lineage } from '../layout/lineage.js';
import { loadMirrorRecord } from '../layout/open-mirror.js';
import { mirrorStatePath } from '../layout/region-state.js';
import { heldUnknown, judgeNewLeg, withLeg, withoutLeg } from '../layout/reshape.js';
import { encodeState, type MirrorSnapshot } from '../layout/state-codec.js';
import { MAX_LEGS, type LegConfig, type LegEdit, type NodeContext, type Policy, type RemoteConfig } from '../types.js';
import { Leg, type LegOptions } from './leg.js';
import { AssemblyGate } from './assembly-gate.js';
import { sameExportAs } from './multi-show.js';

const rnd = { bytes: (n: number): Buffer => randomBytes(n) };
/** how long the probe of a new leg may take to connect and read its tail */
const PROBE_MS = 15_000;

export interface LegEditHost {
  readonly name: string;
  readonly log: Logger;
  readonly ctx: NodeContext;
  config(): RemoteConfig;
  policy(): Policy;
  legs(): readonly Leg[];
  device(): Device | null;
  splitBrain(): boolean;
  /** what every leg of the node is built with */
  legBase(): Pick<LegOptions, 'ctx' | 'policy' | 'crypto' | 'socketFactory'>;
  /** the node's failure (a reassembly refused), or null */
  failure(): string | null;
  /** stop reading NBD requests, let those in flight finish, close the device (its state saved) */
  pause(): Promise<void>;
  /** new legs from the config `commit` installs (or the old one when it throws), reassembled through `gate` (default: a fresh one); resolves once serving */
  rebuild(commit: () => Promise<void>, gate?: AssemblyGate): Promise<void>;
  /** this start's assembly gate (its one-shot options) */
  gate(): AssemblyGate;
  /** the node fails (a multi-leg node-level failure) */
  fail(reason: string, detail: string): void;
}


function refuse(where: string, msg: string, errno = 'EINVAL'): DstError {
  return new DstError('DST_ERR_INVALID', `${where}: ${msg}`, { errno });
}

export function legName(l: LegConfig, i: number): string {
  return `leg ${i} (${formatLegSpec(l)})`;
}

/** A running mirror with an in-sync leg connected, or why the legs cannot change now. */
function checkEditable(h: LegEditHost, where: string): { device: Device; lineage: Lineage } {
  const cfg = h.config();
  if (cfg.layout !== 'mirror') throw refuse(where, `${cfg.name} is a ${cfg.layout} device; only a mirror's legs change while it serves (the others' legs hold distinct data)`);
  if (h.splitBrain()) throw refuse(where, `${cfg.name} is in split brain; \`dst node resolve ${cfg.name} --keep LEG\` first`);
  const device = h.device();
  const lineage = device?.lineage?.() ?? null;
  if (!device || !lineage) throw refuse(where, `${cfg.name} is not serving (start it first: the legs' metadata is rewritten while it runs)`, 'EAGAIN');
  const live = h.legs().some((l, i) => l.phase === 'ready' && device.legState(i) === 'in-sync');
  if (!live) throw refuse(where, `${cfg.name} has no connected in-sync leg to take the change`, 'EAGAIN');
  return { device, lineage };
}

/** The new state onto the legs that stay (`from[j]`: leg j's old index) and the state dir. */
async function writeState(h: LegEditHost, s: MirrorSnapshot, from: readonly (number | null)[]): Promise<void> {
  const legs = h.legs();
  const ports = from.map((old, j) => (old === null ? null : new LegPort(j, legs[old]!, () => h.policy().maxInflight)));
  try {
    const io: LegIoHost = { ports: ports as LegPort[], clock: h.ctx.clock, policy: () => h.policy(), legTimedOut: () => {} };
    const up = ports.flatMap((p, j) => (p !== null && p.leg.phase === 'ready' && p.leg.sizeBytes !== null ? [j] : []));
    const size = (j: number): number => ports[j]!.leg.sizeBytes!;
    const failed = await rewriteMeta(io, up, size, encodeState(s));
    if (failed.length > 0) {
      // their metadata may be old or new: the mirror holds them as unknown, and the others say so
      for (const j of failed) heldUnknown(s, j);
      const again = await rewriteMeta(io, up.filter((j) => !failed.includes(j)), size, encodeState(s));
      if (again.length > 0) throw new DstError('DST_ERR_IO', `cannot write the legs' metadata (legs ${[...failed, ...again].join(', ')} failed)`, { errno: 'EIO' });
    }
    await writeFileAtomic(mirrorStatePath(h.ctx.stateDir, h.name), encodeState(s), { where: 'mirror state save' });
  } finally {
    for (const p of ports) p?.close();
  }
}

/** Pause, turn the saved state into the new one, write it, and rebuild with the new config. */
async function reshape(h: LegEditHost, where: string, next: (s: MirrorSnapshot) => { s: MirrorSnapshot; from: (number | null)[] },
  commit: () => Promise<void>): Promise<void> {
  await h.pause();
  try {
    const saved = await loadMirrorRecord(h.ctx.stateDir, h.name, h.log);
    if (!saved) throw new DstError('DST_ERR_IO', 'the mirror state was not saved', { errno: 'EIO' });
    const { s, from } = next(saved);
    await writeState(h, s, from);
  } catch (err) {
    h.log.error(`${where}: ${(err as Error).message}; the mirror resumes with its legs as they were`, { op: where });
    await h.rebuild(() => Promise.resolve());
    throw err instanceof DstError ? new DstError(err.code, `${where}: ${err.message}`, { errno: err.errno ?? 'EIO' }) : err;
  }
  await h.rebuild(commit);
  const failed = h.failure();
  if (failed !== null) throw new DstError('DST_ERR_IO', `${where}: the legs changed but the mirror did not reassemble (${failed}); see dst node show ${h.name}`, { errno: 'EIO' });
}

interface Probe {
  leg: Leg;
  port: LegPort;
  io: LegIoHost;
  close(): void;
}

/** A link of its own to the offered export, connected (HELLO done), or why not. */
async function probe(h: LegEditHost, l: LegConfig, where: string): Promise<Probe> {
  let settle: (err: Error | null) => void = () => {};
  const connected = new Promise<Error | null>((resolve) => { settle = resolve; });
  const leg: Leg = new Leg({
    ...h.legBase(), log: h.log.child({ probe: l.remote }), remote: () => l.remote, exportName: () => l.export ?? '', sizeLimit: () => null, emit: () => {},
    phaseChanged: () => {
      if (leg.phase === 'backoff' || leg.phase === 'failed') settle(new Error(leg.reason ?? leg.phase));
    },
    firstHello: (conn, sessionHex) => {
      leg.becomeReady(conn, sessionHex);
      settle(null);
    },
  });
  const port = new LegPort(0, leg, () => h.policy().maxInflight);
  const close = (): void => {
    leg.closeLink(false);
    port.close();
    leg.closeTable();
  };
  const timer = h.ctx.clock.setTimer(PROBE_MS, () => settle(new Error(`no answer within ${PROBE_MS} ms`)));
  leg.start();
  const err = await connected;
  timer.cancel();
  if (err !== null || leg.sizeBytes === null) {
    close();
    throw refuse(where, `cannot reach ${formatLegSpec(l)}: ${err?.message ?? 'no size'}`, 'ECONNREFUSED');
  }
  return { leg, port, io: { ports: [port], clock: h.ctx.clock, policy: () => h.policy(), legTimedOut: () => {} }, close };
}

/** node leg add: append `l` to the running mirror; it compares and copies in the background. */
async function addLeg(h: LegEditHost, l: LegConfig, o: { forceInit?: boolean }, commit: (legs: LegConfig[]) => Promise<void>): Promise<void> {
  const where = `node leg add ${h.name}`;
  const cfg = h.config();
  const { lineage, device } = checkEditable(h, where);
  if (cfg.legs.length >= MAX_LEGS) throw refuse(where, `a mirror has at most ${MAX_LEGS} legs`);
  const same = cfg.legs.findIndex((x) => x.remote === l.remote && (x.export ?? '') === (l.export ?? ''));
  if (same >= 0) throw refuse(where, `${formatLegSpec(l)} is ${legName(cfg.legs[same]!, same)} already`, 'EEXIST');
  const name = legName(l, cfg.legs.length);
  const p = await probe(h, l, where);
  try {
    const twin = sameExportAs(h.legs(), p.leg);
    if (twin >= 0) throw refuse(where, `${name} is the same export as ${legName(cfg.legs[twin]!, twin)} (identity ${p.leg.identity!.toString('hex')})`, 'EEXIST');
    if (p.leg.sizeBytes! < device.size) throw refuse(where, `${name} has ${p.leg.sizeBytes} bytes; the mirror needs ${device.size} and its metadata tail`);
    const verdict = judgeNewLeg(name, lineage, await new MetaReplica(1).read(p.io, 0, p.leg.sizeBytes!), o.forceInit === true);
    if (verdict.kind === 'refuse') throw refuse(where, verdict.message);
    if (verdict.note) h.log.warn(verdict.note, { op: 'node leg add' });
    if (verdict.wipe && !await wipeMeta(p.io, 0, p.leg.sizeBytes!)) throw refuse(where, `${name}: cannot blank its metadata`, 'EIO');
  } finally {
    p.close();
  }
  const legs = [...cfg.legs, l];
  await reshape(h, where, (s) => ({ s: withLeg(s), from: [...cfg.legs.map((_, i) => i), null] }), () => commit(legs));
  h.log.info(`${name} added: it compares every region against the in-sync legs and copies what differs`, { op: 'node leg add' });
}

/** node leg del: remove leg k from the running mirror; the legs after it are renumbered. */
async function delLeg(h: LegEditHost, k: number, o: { force?: boolean }, commit: (legs: LegConfig[]) => Promise<void>): Promise<void> {
  const where = `node leg del ${h.name} ${k}`;
  const cfg = h.config();
  const { device } = checkEditable(h, where);
  if (!Number.isInteger(k) || k < 0 || k >= cfg.legs.length) throw refuse(where, `no leg ${k} (the mirror has legs 0 to ${cfg.legs.length - 1})`, 'ENOENT');
  if (cfg.legs.length === 1) throw refuse(where, `leg ${k} is the mirror's only leg (dst node del removes the device)`);
  const others = h.legs().some((l, i) => i !== k && l.phase === 'ready' && device.legState(i) === 'in-sync');
  if (!others && !o.force) {
    throw refuse(where, `${legName(cfg.legs[k]!, k)} is the last in-sync leg: the others miss data only it holds; --force removes it and takes the first connected leg as it is`);
  }
  const keep = cfg.legs.flatMap((_, i) => (i === k ? [] : [i]));
  const legs = h.legs();
  await reshape(h, where, (s) => {
    const removal = withoutLeg(s, k, keep.map((i) => legs[i]!.phase === 'ready'), o.force === true, rnd);
    for (const note of removal.notes) h.log.warn(note, { op: 'node leg del' });
    return { s: removal.snapshot, from: keep };
  }, () => commit(keep.map((i) => cfg.legs[i]!)));
  h.log.info(`${legName(cfg.legs[k]!, k)} removed; the legs after it are renumbered and share a new generation it has no part in`, { op: 'node leg del' });
}

/** node leg add / node leg del on the running mirror; `commit` saves the new legs in the config. */
export function editLegs(h: LegEditHost, edit: LegEdit, commit: (legs: LegConfig[]) => Promise<void>): Promise<void> {
  return edit.op === 'add' ? addLeg(h, edit.leg, edit, commit) : delLeg(h, edit.index, edit, commit);
}

/**
 * A mirror whose legs' metadata orders them otherwise than the node's config (assemble.ts): the
 * legs are put in that order, saved in the config, and the mirror assembles again with this
 * start's options. Nothing was written to the legs; a second reorder in one start fails the node.
 */
export async function reorderLegs(h: LegEditHost, r: Reorder, save: ((legs: LegConfig[]) => Promise<void>) | undefined): Promise<void> {
  const legs = r.order.map((j) => h.config().legs[j]!);
  const was = h.gate();
  if (!save || was.reordered) {
    h.fail('leg-order', `${r.note}, but the node's legs could not be put in that order (the config did not take it)`);
    return;
  }
  h.log.warn(`${r.note}: --remote ${legs.map((l) => formatLegSpec(l)).join(' --remote ')}`, { op: 'start' });
  const gate = new AssemblyGate(was.opts);
  gate.reordered = true;
  try {
    await h.rebuild(() => save(legs), gate);
  } catch (err) {
    h.fail('leg-order', `${r.note}, but the legs could not be rebuilt: ${(err as Error)?.message ?? String(err)}`);
  }
}
