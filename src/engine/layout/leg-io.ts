// The mirror's own requests to single legs (resync copies, verify digests): each answered within
// leg-timeout or given up, so background work never waits on a dead leg for the whole deadline.
import type { Clock } from '../../util/clock.js';
import { releasePayload } from '../io/payload-pool.js';
import { legTimeoutOf } from '../policy.js';
import type { BlockData, LegRequest } from '../remote/target.js';
import type { Policy } from '../types.js';
import type { LegPort } from './leg-port.js';

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

/** the granule in which a copy looks for zeroes (what it punches rather than writes) */
const ZERO_GRANULE = 64 * 1024;
const ZEROES = Buffer.alloc(ZERO_GRANULE);

/**
 * Copy [at, at + n) from leg `source` to leg `target` (written with FUA); false if either failed.
 * What reads as zeroes (per 64 KiB granule) is zeroed on the target with a punched hole instead of
 * written, so a resynced leg keeps the source's holes (and gains holes where the source held
 * allocated zeroes: the legs read the same). Why not the source's extents (Op.BLOCK_STATUS): a
 * SEEK_HOLE costs in proportion to the data after the offset on some file systems (15 ms for
 * 1 GiB of tmpfs, on the export's event loop), which halved a resync; looking at the data read
 * anyway costs a memcmp.
 */
export async function copyRange(h: LegIoHost, source: number, target: number, at: number, n: number): Promise<boolean> {
  const data = await sendWithin(h, source, { op: 'read', offset: at, length: n, payload: null, fua: false });
  if (data === null) return false;
  const payload = Buffer.isBuffer(data) ? data : Buffer.concat(data);
  try {
    const sent = zeroRuns(payload).map((r) => sendWithin(h, target, r.zero
      ? { op: 'write-zeroes', offset: at + r.start, length: r.length, payload: null, fua: true, zeroFlags: 0 }
      : { op: 'write', offset: at + r.start, length: r.length, payload: payload.subarray(r.start, r.start + r.length), fua: true }));
    return (await Promise.all(sent)).every((got) => got !== null);
  } finally {
    releasePayload(data);
  }
}

/** The buffer as runs of whole zero granules and of data, in order, neighbours of a kind joined. */
export function zeroRuns(b: Buffer): Array<{ start: number; length: number; zero: boolean }> {
  const runs: Array<{ start: number; length: number; zero: boolean }> = [];
  for (let start = 0; start < b.length; start += ZERO_GRANULE) {
    const length = Math.min(ZERO_GRANULE, b.length - start);
    const zero = b.subarray(start, start + length).equals(length === ZERO_GRANULE ? ZEROES : ZEROES.subarray(0, length));
    const last = runs[runs.length - 1];
    if (last && last.zero === zero) last.length += length;
    else runs.push({ start, length, zero });
  }
  return runs;
}

/** Each leg's digest of [at, at + n) (Op.DIGEST, computed on the export), null where it failed. */
export async function digestsOf(h: LegIoHost, legs: readonly number[], at: number, n: number): Promise<(Buffer | null)[]> {
  const got = await Promise.all(legs.map((i) => sendWithin(h, i, { op: 'digest', offset: at, length: n, payload: null, fua: false })));
  return got.map((d) => (d === null ? null : Buffer.isBuffer(d) ? d : Buffer.concat(d)));
}
