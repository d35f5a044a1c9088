// The mirror commands' argument and state checks (pure), before the remote node acts on them.
import { DstError } from '../../util/errors.js';
import type { RemoteConfig, VerifyOptions } from '../types.js';

function notALeg(where: string, opt: string, v: number, c: RemoteConfig): DstError | null {
  if (Number.isInteger(v) && v >= 0 && v < c.legs.length) return null;
  return new DstError('DST_ERR_INVALID', `${where}: ${opt} ${v} is not a leg of ${c.name} (legs 0 to ${c.legs.length - 1})`, { errno: 'EINVAL' });
}

/** node verify: a mirror, serving, with --from a leg and only with --repair. */
export function checkVerify(c: RemoteConfig, o: VerifyOptions, serving: boolean, state: string): void {
  const where = `node verify ${c.name}`;
  if (c.layout !== 'mirror') throw new DstError('DST_ERR_INVALID', `${where}: ${c.name} is a ${c.layout} device; verify compares the legs of a mirror`);
  const bad = o.from === null ? null : notALeg(where, '--from', o.from, c);
  if (bad) throw bad;
  if (o.from !== null && !o.repair) throw new DstError('DST_ERR_INVALID', `${where}: --from names the source of repairs; give --repair too`);
  if (!serving) throw new DstError('DST_ERR_STATE', `${where}: the mirror is not serving yet (${state})`, { errno: 'EAGAIN' });
}

/** node resolve: only a mirror in split brain, and --keep one of its legs. */
export function checkResolve(c: RemoteConfig, splitBrain: boolean, keep: number, state: string): void {
  const where = `node resolve ${c.name}`;
  if (!splitBrain) throw new DstError('DST_ERR_STATE', `${where}: ${c.name} is not in split brain (${state}); nothing to resolve`, { errno: 'EINVAL' });
  const bad = notALeg(where, '--keep', keep, c);
  if (bad) throw bad;
}
