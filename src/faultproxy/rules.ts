// The fault proxy's rules as values: the modes, the corruption rule and the checks of what a
// caller asks for, and corrupting one received chunk by the rule. Pure: no sockets, no clock.
import { DstError } from '../util/errors.js';
import type { Direction } from './capture.js';

export type DirSpec = Direction | 'both';
export type ProxyMode = 'pass' | 'delay' | 'stall';

export type CorruptRule =
  | { kind: 'offset'; offset: number; dir: DirSpec; bit: number }
  | { kind: 'every'; every: number; dir: DirSpec; bit: number };

export function checkDir(dir: unknown, what = 'direction'): DirSpec {
  if (dir === 'up' || dir === 'down' || dir === 'both') return dir;
  throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(dir)}: expected up, down or both`);
}

export function checkCount(n: unknown, what: string, min: number): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) {
    throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(n)}: expected an integer ≥ ${min}`);
  }
  return n;
}

export function checkBit(bit: unknown): number {
  if (typeof bit !== 'number' || !Number.isInteger(bit) || bit < 0 || bit > 7) {
    throw new DstError('DST_ERR_INVALID', `invalid bit ${JSON.stringify(bit)}: expected 0-7`);
  }
  return bit;
}

/**
 * The chunk received at stream offset `start` in `dir`, with the rule's bits flipped: a copy when
 * any byte is hit (the source's buffer is never written), else the chunk itself; `flipped` counts
 * the bytes hit.
 */
export function corruptChunk(rule: CorruptRule | null, dir: Direction, start: number, chunk: Buffer): { data: Buffer; flipped: number } {
  if (!rule || (rule.dir !== 'both' && rule.dir !== dir) || chunk.length === 0) return { data: chunk, flipped: 0 };
  const end = start + chunk.length;
  let copy: Buffer | null = null;
  let flipped = 0;
  const flip = (abs: number): void => {
    copy ??= Buffer.from(chunk);
    copy[abs - start] ^= 1 << rule.bit;
    flipped++;
  };
  if (rule.kind === 'offset') {
    if (rule.offset >= start && rule.offset < end) flip(rule.offset);
  } else {
    for (let o = Math.ceil((start + 1) / rule.every) * rule.every - 1; o < end; o += rule.every) flip(o);
  }
  return { data: copy ?? chunk, flipped };
}
