// Where the bytes of a multi-leg device live (issue 14, DESIGN §13): the size of a linear, stripe
// or mirror device from its legs' sizes, and a device range cut into (leg, leg offset) pieces for
// linear and stripe. Pure: no I/O, no state; the split target (next slice) submits the pieces.
import { DstError } from '../../util/errors.js';

/** Stripe chunks and mirror regions: a power of two of at least this (the smallest block any NBD client sends). */
export const MIN_CHUNK = 4096;
/**
 * The tail of every mirror leg kept for the legs' own metadata (the Mirror healing issue puts it
 * there, like md's v1.0 superblock): the device ends before it, so data starts at offset 0 on
 * every leg. 4 MiB holds two copies of a header and a bitmap of up to about 16 M regions each
 * (16 TiB at the default 1 MiB region).
 */
export const MIRROR_RESERVED_TAIL = 4 * 1024 * 1024;

/** One piece of a device range: `length` bytes at `legOffset` on leg `leg`, at `bufferOffset` in the request. */
export interface Piece {
  leg: number;
  legOffset: number;
  length: number;
  bufferOffset: number;
}

/** The address map of a linear or stripe device (a mirror maps every range to every leg whole). */
export type SplitMap =
  | { readonly kind: 'linear'; readonly legSizes: readonly number[] }
  | { readonly kind: 'stripe'; readonly legs: number; readonly chunk: number; readonly legSize: number };

function invalid(what: string, msg: string): DstError {
  return new DstError('DST_ERR_INVALID', `${what}: ${msg}`, { errno: 'EINVAL' });
}

/** A stripe chunk or mirror region size: a power of two ≥ 4 KiB. */
export function checkPowerOfTwoSize(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < MIN_CHUNK || (n & (n - 1)) !== 0 || n > 2 ** 30) {
    throw invalid(what, `${n} must be a power of two from 4K to 1G`);
  }
  return n;
}

function checkLegSizes(legSizes: readonly number[], min: number, layout: 'linear' | 'stripe' | 'mirror'): void {
  if (legSizes.length < min) throw invalid(`${layout} layout`, `needs at least ${min} leg${min === 1 ? '' : 's'}, got ${legSizes.length}`);
  legSizes.forEach((s, i) => {
    if (!Number.isSafeInteger(s) || s < 0) throw invalid(`${layout} layout`, `leg ${i} has size ${s}`);
  });
}

/** A linear device: the legs one after another, in leg order. */
export function linearMap(legSizes: readonly number[]): SplitMap {
  checkLegSizes(legSizes, 2, 'linear');
  return { kind: 'linear', legSizes: [...legSizes] };
}

/** A stripe device: chunk i on leg i mod N; every leg contributes the smallest leg rounded down to the chunk. */
export function stripeMap(legSizes: readonly number[], chunk: number): SplitMap {
  checkLegSizes(legSizes, 2, 'stripe');
  checkPowerOfTwoSize(chunk, 'stripe chunk');
  const smallest = Math.min(...legSizes);
  return { kind: 'stripe', legs: legSizes.length, chunk, legSize: smallest - (smallest % chunk) };
}

/** The device size a map serves. */
export function splitSize(m: SplitMap): number {
  return m.kind === 'linear' ? m.legSizes.reduce((a, b) => a + b, 0) : m.legs * m.legSize;
}

/** The mirror's size: the smallest leg less the reserved tail (0 when the smallest leg is not bigger). */
export function mirrorSize(legSizes: readonly number[]): number {
  checkLegSizes(legSizes, 1, 'mirror');
  return Math.max(0, Math.min(...legSizes) - MIRROR_RESERVED_TAIL);
}

/** Legs bigger than the smallest: their extra space is unused (the caller warns, naming them). */
export function largerLegs(legSizes: readonly number[]): number[] {
  const smallest = Math.min(...legSizes);
  return legSizes.flatMap((s, i) => (s > smallest ? [i] : []));
}

/**
 * Cut [offset, offset + length) into pieces in device order, split at leg and chunk boundaries.
 * Adjacent chunks that land next to each other on one leg stay separate pieces: their request
 * bytes are not adjacent (N − 1 chunks lie between them), and pieces are views, never copies.
 */
export function mapRange(m: SplitMap, offset: number, length: number): Piece[] {
  const size = splitSize(m);
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw invalid('layout map', `range ${offset}+${length} is outside the device of ${size} bytes`);
  }
  const out: Piece[] = [];
  if (length === 0) return out;
  if (m.kind === 'linear') {
    let legStart = 0;
    let done = 0;
    for (let leg = 0; leg < m.legSizes.length && done < length; leg++) {
      const legEnd = legStart + m.legSizes[leg]!;
      const at = offset + done;
      if (at < legEnd) {
        const n = Math.min(length - done, legEnd - at);
        out.push({ leg, legOffset: at - legStart, length: n, bufferOffset: done });
        done += n;
      }
      legStart = legEnd;
    }
    return out;
  }
  let done = 0;
  while (done < length) {
    const at = offset + done;
    const chunkNo = Math.floor(at / m.chunk);
    const within = at - chunkNo * m.chunk;
    const n = Math.min(length - done, m.chunk - within);
    out.push({ leg: chunkNo % m.legs, legOffset: Math.floor(chunkNo / m.legs) * m.chunk + within, length: n, bufferOffset: done });
    done += n;
  }
  return out;
}
