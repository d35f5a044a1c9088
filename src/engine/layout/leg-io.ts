// The mirror's own requests to single legs (resync copies, verify digests): each answered within
// leg-timeout or given up, so background work never waits on a dead leg for the whole deadline.
import type { Clock } from '../../util/clock.js';
import { releasePayload } from '../io/payload-pool.js';
import { legTimeoutOf } from '../policy.js';
import type { BlockData, LegRequest } from '../remote/target.js';
import type { Policy } from '../types.js';
import type { LegPort } from './leg-port.js';
import { EXTENT_SIZE, ExtentFlag, ZeroFlag } from '../../protocol/thin.js';

export interface LegIoHost {
  readonly ports: readonly LegPort[];
  readonly clock: Clock;
  policy(): Policy;
  /** leg i did not answer within leg-timeout: it goes behind (unless it is the last in sync) */
  legTimedOut(i: number): void;
}

/** One request to leg i: its data ([] when it has none), or null on an error or after leg-timeout. */
export function sendWithin(h: LegIoHost, i: number, req: LegRequest): Promise<BlockData | null> {
  return new Promise((resolve) => {
    let answered = false;
    const timer = h.clock.setTimer(legTimeoutOf(h.policy()), () => {
      answered = true;
      h.legTimedOut(i);
      resolve(null);
    });
    h.ports[i]!.send(req, (errno, data) => {
      if (answered) {
        if (errno === null) releasePayload(data);
        return;
      }
      answered = true;
      timer.cancel();
      resolve(errno === null ? (data ?? []) : null);
    });
  });
}

/**
 * Copy [at, at + n) from leg `source` to leg `target` (written with FUA); false if either failed.
 * The source's extents say what to copy: data is read and written, a range that reads zeroes is
 * zeroed on the target (a hole punched for a hole, in place for allocated zeroes), so a resynced
 * leg keeps the source's holes.
 */
export async function copyRange(h: LegIoHost, source: number, target: number, at: number, n: number): Promise<boolean> {
  for (let done = 0; done < n;) {
    const got = await sendWithin(h, source, { op: 'block-status', offset: at + done, length: n - done, payload: null, fua: false });
    if (got === null) return false;
    const answer = Buffer.from(Buffer.isBuffer(got) ? got : Buffer.concat(got));
    releasePayload(got);
    for (const e of extentsIn(answer, n - done)) {
      if (!(await copyExtent(h, source, target, at + done, e.length, e.flags))) return false;
      done += e.length;
    }
  }
  return true;
}

/**
 * The (length, flags) pairs of a block-status answer, clipped to `left` bytes. An answer that
 * says nothing usable (empty, torn, a zero length) counts as data for the whole rest: copying
 * data is always right, guessing a hole is not, and the copy must advance.
 */
function extentsIn(answer: Buffer, left: number): Array<{ length: number; flags: number }> {
  const out: Array<{ length: number; flags: number }> = [];
  for (let d = 0; d + EXTENT_SIZE <= answer.length && left > 0; d += EXTENT_SIZE) {
    const length = Math.min(answer.readUInt32BE(d), left);
    if (length === 0) break;
    out.push({ length, flags: answer.readUInt32BE(d + 4) });
    left -= length;
  }
  return out.length > 0 ? out : [{ length: left, flags: 0 }];
}

async function copyExtent(h: LegIoHost, source: number, target: number, at: number, n: number, flags: number): Promise<boolean> {
  if ((flags & ExtentFlag.ZERO) !== 0) {
    const zeroFlags = (flags & ExtentFlag.HOLE) !== 0 ? 0 : ZeroFlag.NO_HOLE;
    return (await sendWithin(h, target, { op: 'write-zeroes', offset: at, length: n, payload: null, fua: true, zeroFlags })) !== null;
  }
  const data = await sendWithin(h, source, { op: 'read', offset: at, length: n, payload: null, fua: false });
  if (data === null) return false;
  const payload = Buffer.isBuffer(data) ? data : Buffer.concat(data);
  const wrote = await sendWithin(h, target, { op: 'write', offset: at, length: n, payload, fua: true });
  releasePayload(data);
  return wrote !== null;
}

/** Each leg's digest of [at, at + n) (Op.DIGEST, computed on the export), null where it failed. */
export async function digestsOf(h: LegIoHost, legs: readonly number[], at: number, n: number): Promise<(Buffer | null)[]> {
  const got = await Promise.all(legs.map((i) => sendWithin(h, i, { op: 'digest', offset: at, length: n, payload: null, fua: false })));
  return got.map((d) => (d === null ? null : Buffer.isBuffer(d) ? d : Buffer.concat(d)));
}
