// The node-state rules of the control commands, in one place: which states permit a command (the
// family table's list, or the lifecycle's own rule) and the refusal each gets, naming the state,
// what is allowed and what to do about it. Pure: the registry asks with the node's current state.
import { DstError } from '../util/errors.js';
import { formatDuration } from '../util/parse.js';
import type { AttachmentShow, NodeState, SplitBrainShow } from './types.js';

const opName = (cmd: string): string => cmd.replace(/-/g, ' ');

/** Refuse control command `cmd` on node `name` in `state` unless `states` (its table entry) has it. */
export function requireState(cmd: string, name: string, state: NodeState, states: readonly NodeState[]): void {
  if (states.includes(state)) return;
  const where = `${opName(cmd)} ${name}`;
  const hint = states.length === 1 && states[0] === 'configured' ? `; stop it first (dst node stop ${name})`
    : states.includes('ready') && (state === 'configured' || state === 'failed') ? `; start it first (dst node start ${name})`
      : states.includes('ready') ? `; wait until it is ready (dst node show ${name})` : '';
  throw new DstError('DST_ERR_STATE', `${where}: not allowed while the node is ${state} (allowed: ${states.join(', ')})${hint}`, { errno: 'EBUSY' });
}

/** `node start` while the node drains: refused (it may start once it is configured again). */
export function requireNotStopping(where: string, state: NodeState): void {
  if (state === 'stopping') {
    throw new DstError('DST_ERR_STATE', `${where}: the node is stopping; start it again once it is configured`, { errno: 'EBUSY' });
  }
}

/** `node del`: only a configured (not serving) node; checked again inside the change, where it counts. */
export function requireConfigured(where: string, name: string, state: NodeState): void {
  if (state !== 'configured') {
    throw new DstError('DST_ERR_STATE', `${where}: the node is ${state}; stop it first (dst node stop ${name})`, { errno: 'EBUSY' });
  }
}

/** `node del`: refused while the node is attached as a local block device. */
export function requireDetached(where: string, name: string, att: AttachmentShow | null): void {
  if (att) {
    throw new DstError('DST_ERR_BUSY', `${where}: the node is attached as ${att.device || '(attaching)'} (${att.state}); detach it first (dst detach ${name})`, { errno: 'EBUSY' });
  }
}

/** A state from which `node start` is a start (announced as node-started), not a repeat. */
export function isStopped(state: NodeState): boolean {
  return state === 'configured' || state === 'failed';
}

/** `node start` of a remote that did not become ready within waitMs: why, as the error to answer (a split brain: its legs, generations and way out). */
export function notReadyError(where: string, name: string, st: NodeState, reason: string | null, waitMs: number, sb: SplitBrainShow | null = null): DstError {
  const why = `state ${st}${reason ? ` (reason ${reason})` : ''}`;
  if (st === 'failed' && sb) {
    const held = sb.legs.map((leg, k) => `leg ${leg} holds generation ${sb.generations[k] ?? '?'}`).join(', ');
    return new DstError('DST_ERR_IDENTITY', `${where}: not ready: ${why}: split brain, ${held}, written apart; nothing is served `
      + `until \`dst node resolve ${name} --keep LEG\` picks the survivor (the other legs copy what differs from it)`, { errno: 'EIO' });
  }
  if (st === 'failed') {
    return new DstError('DST_ERR_IDENTITY', `${where}: not ready: ${why}; the node stays failed until started again`, { errno: 'EIO' });
  }
  if (st === 'configured' || st === 'stopping') {
    return new DstError('DST_ERR_STATE', `${where}: the node was stopped while waiting for it to become ready`, { errno: 'ESHUTDOWN' });
  }
  return new DstError('DST_ERR_TIMEOUT',
    `${where}: not ready after ${formatDuration(waitMs)}: ${why}; the node keeps trying (watch it with dst node show ${name})`, { errno: 'ETIMEDOUT' });
}
