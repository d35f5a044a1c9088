// Opening a mirror (issue 15): read the state dir's record and every reachable leg's tail, plan the
// assembly (assemble.ts), build the live state and the device, and save once — the new session
// number and the decided state go to the legs' metadata (a torn copy is rewritten) before the
// first request is served.
import { randomBytes } from 'node:crypto';
import type { Device } from './device.js';
import { planAssembly, type LegFound, type Reorder, type SplitBrain } from './assemble.js';
import { MetaReplica, MAX_META_BODY } from './leg-meta.js';
import { MetaSync, type MetaSyncHost } from './meta-sync.js';
import { Mirror, type MirrorOptions } from './mirror.js';
import { DEFAULT_MAX_ACTIVE, RegionState, mirrorStatePath, readMirrorRecord } from './region-state.js';
import { encodedSize, type MirrorSnapshot } from './state-codec.js';
import { MAX_HISTORY } from './lineage.js';
import { largerLegs, mirrorSize } from './map.js';
import { DstError } from '../../util/errors.js';
import { Feature } from '../../protocol/wire.js';
import type { Logger } from '../../util/log.js';

const rnd = { bytes: (n: number): Buffer => randomBytes(n) };

/** The state dir's record of the mirror, or null (none, or one that cannot be used: logged). */
export async function loadMirrorRecord(stateDir: string, name: string, log: Logger): Promise<MirrorSnapshot | null> {
  const file = mirrorStatePath(stateDir, name);
  const rec = await readMirrorRecord(file);
  if (typeof rec !== 'string') return rec;
  log.error(`mirror state ${file} cannot be used (${rec}): the legs' metadata decides`, { op: 'mirror-state', errno: 'EIO' });
  return null;
}

export type Opened = { kind: 'device'; device: Device } | ({ kind: 'split-brain' } & SplitBrain) | Reorder;

/** What a mirror's legs reached so far leave room for (legs larger than the smallest: logged). */
function reachedSize(o: Omit<MirrorOptions, 'size'>): number {
  const known = o.ports.map((p) => p.leg.sizeBytes);
  const reached = known.flatMap((k) => (k === null ? [] : [k]));
  const larger = largerLegs(known.map((k) => k ?? 0)).filter((i) => known[i] !== null);
  if (larger.length > 0) {
    o.log.warn(`mirror legs of different sizes: leg${larger.length > 1 ? 's' : ''} ${larger.join(', ')} ` +
      `larger than the smallest (${Math.min(...reached)} bytes); the extra space is unused`, { op: 'start' });
  }
  return mirrorSize(reached);
}

export async function openMirror(opts: Omit<MirrorOptions, 'size'>): Promise<Opened> {
  const o: MirrorOptions = { ...opts, size: reachedSize(opts) };
  const n = o.ports.length;
  const need = encodedSize(n, o.size, o.region, DEFAULT_MAX_ACTIVE, MAX_HISTORY);
  if (need > MAX_META_BODY) {
    throw new DstError('DST_ERR_INVALID', `${o.name}: a mirror of ${o.size} bytes in regions of ${o.region} needs ${need} bytes of metadata per leg, `
      + `more than the ${MAX_META_BODY} the legs' tail holds; use a larger --region`, { errno: 'EINVAL' });
  }
  const record = await loadMirrorRecord(o.ctx.stateDir, o.name, o.log);
  const replica = new MetaReplica(n);
  let mirror: Mirror | null = null;
  let rs: RegionState | null = null;
  const host: MetaSyncHost = {
    ports: o.ports, clock: o.ctx.clock, policy: o.policy, name: o.name, log: o.log,
    legName: (i) => o.legNames[i]!,
    legTimedOut: () => {}, // a silent leg is the mirror's to send behind (leg-io gives up on it)
    // before the device exists (the assembly's save), a leg with nothing marked is in sync
    inSync: (i) => (mirror ? mirror.isInSync(i) : rs?.outOfSyncCount(i) === 0),
    copyFailed: (i) => mirror?.metaCopyFailed(i),
    unknown: (i) => mirror?.legUnknown(i) ?? Promise.resolve(),
    refused: (i, message) => o.ports[i]!.leg.fail('foreign-metadata', message),
    splitBrain: (s) => o.splitBrain(s),
    isClosed: () => mirror?.isClosed() ?? false,
  };
  const meta = new MetaSync(host, replica, n, o.assemble.forceInit === true);
  const found: LegFound[] = await Promise.all(o.ports.map((p, i) => {
    const l = p.leg;
    return l.phase === 'ready' && l.sizeBytes !== null ? replica.read(host, i, l.sizeBytes) : Promise.resolve({ kind: 'away' as const });
  }));
  const result = planAssembly({
    name: o.name, legNames: o.legNames, regionSize: o.region, deviceSize: o.size, record, found, opts: o.assemble, rnd,
    identities: o.ports.map((p, i) => (found[i]!.kind === 'away' ? null : p.leg.identity)),
  });
  if (result.kind !== 'plan') return result; // nothing written to the legs yet
  const { plan } = result;
  for (const note of plan.notes) o.log.warn(note, { op: 'start' });
  // one writer per mirror: every HELLO from now on carries this assembly's session, and each
  // export refuses older ones (a leg connected already says so in a new HELLO)
  const claim = { uuid: plan.snapshot.lineage.uuid, session: plan.snapshot.lineage.session };
  o.ports.forEach((p, i) => {
    p.leg.setClaim(claim);
    if (p.leg.phase !== 'ready') return;
    if ((p.leg.features & Feature.MIRROR_CLAIM) === 0) {
      o.log.warn(`${o.legNames[i]}: the export predates mirror claims; it cannot refuse an older engine that still writes`, { op: 'start', leg: i });
    }
    p.leg.reconnect();
  });
  found.forEach((f, i) => { if (f.kind !== 'away' && f.kind !== 'io-error') meta.markChecked(i); });
  const state = new RegionState({
    file: mirrorStatePath(o.ctx.stateDir, o.name), clock: o.ctx.clock, log: o.log, rnd, replicate: (body) => meta.replicate(body),
  }, plan.snapshot);
  rs = state;
  meta.attach(state);
  for (const j of plan.compare) await state.markAllOutOfSync(j);
  if (plan.crashed.length > 0) {
    // an unclean stop: the regions that were being written may differ between legs; one leg that
    // has each region in sync is its source, the others copy it before reads are balanced there
    o.log.warn(`unclean stop: resyncing ${plan.crashed.length} active region(s) from one leg`, { op: 'start' });
    for (const r of plan.crashed) {
      const source = o.ports.findIndex((_, i) => !state.isOutOfSync(i, r));
      if (source < 0) continue; // no leg has it in sync: nothing to copy from
      for (let i = 0; i < n; i++) if (i !== source) await state.markOutOfSync(i, r, r);
    }
  }
  await state.saveNow();
  mirror = new Mirror({ ...o, size: state.deviceSize, region: state.regionSize }, state, meta);
  return { kind: 'device', device: mirror };
}
