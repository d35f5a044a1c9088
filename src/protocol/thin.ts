// Thin provisioning on the wire: pure codec, no I/O. WRITE_ZEROES flags as a request carries them
// through the layers, and the block-status answer: a list of extent descriptors, each a u32 length
// and u32 flags (big-endian), exactly NBD's base:allocation descriptors (nbd-protocol.md), so the
// answer an export sends in Op.BLOCK_STATUS goes to an NBD client without re-encoding.
//
// An answer covers a prefix of the range asked, from its offset on: at least one extent, lengths
// > 0, never past the range. A client asks again from where it ends (NBD allows the same).
import { DstError } from '../util/errors.js';

/** 'write-zeroes' flags (BlockRequest.zeroFlags; a backend's writeZeroes flags). */
export const ZeroFlag = {
  /** the range must stay allocated: zero it in place, never punch a hole */
  NO_HOLE: 0x1,
  /** fail at once with ENOTSUP rather than write zeroes (the client then writes them itself) */
  FAST_ZERO: 0x2,
} as const;

/** Extent flags (NBD_STATE_HOLE, NBD_STATE_ZERO of base:allocation). */
export const ExtentFlag = {
  /** not allocated */
  HOLE: 0x1,
  /** reads zeroes */
  ZERO: 0x2,
} as const;
const KNOWN_EXTENT_FLAGS = ExtentFlag.HOLE | ExtentFlag.ZERO;

export const EXTENT_SIZE = 8;
/** Most extents in one answer: 8 KiB of descriptors, and a bounded walk of the file per request. */
export const MAX_EXTENTS = 1024;

export interface ExtentDescriptor {
  length: number;
  flags: number;
}

/** Encode descriptors (each length 1..2^32-1). */
export function encodeExtents(list: readonly ExtentDescriptor[]): Buffer {
  const b = Buffer.allocUnsafe(list.length * EXTENT_SIZE);
  list.forEach((e, i) => {
    b.writeUInt32BE(e.length, i * EXTENT_SIZE);
    b.writeUInt32BE(e.flags, i * EXTENT_SIZE + 4);
  });
  return b;
}

function bad(why: string): DstError {
  return new DstError('DST_ERR_BAD_FRAME', `bad block status answer: ${why}`);
}

/**
 * Check an answer to a block-status of `requested` bytes: whole descriptors, 1..MAX_EXTENTS of them,
 * no empty extent, no unknown flag, not past the range. Returns the bytes it covers.
 */
export function checkExtents(b: Buffer, requested: number): number {
  if (b.length === 0 || b.length % EXTENT_SIZE !== 0) return badLength(b.length);
  if (b.length / EXTENT_SIZE > MAX_EXTENTS) throw bad(`${b.length / EXTENT_SIZE} extents, at most ${MAX_EXTENTS}`);
  let covered = 0;
  for (let at = 0; at < b.length; at += EXTENT_SIZE) {
    const length = b.readUInt32BE(at);
    const flags = b.readUInt32BE(at + 4);
    if (length === 0) throw bad(`extent ${at / EXTENT_SIZE} is empty`);
    if ((flags & ~KNOWN_EXTENT_FLAGS) !== 0) throw bad(`extent ${at / EXTENT_SIZE} has unknown flags 0x${flags.toString(16)}`);
    covered += length;
  }
  if (covered > requested) throw bad(`it covers ${covered} bytes of a ${requested}-byte range`);
  return covered;
}

function badLength(n: number): never {
  throw bad(n === 0 ? 'no extent' : `${n} bytes is not a whole number of ${EXTENT_SIZE}-byte descriptors`);
}

/** Bytes a (checked) answer covers. */
export function extentsLength(b: Buffer): number {
  let covered = 0;
  for (let at = 0; at < b.length; at += EXTENT_SIZE) covered += b.readUInt32BE(at);
  return covered;
}

/** The answer cut to at most `length` bytes and `count` extents (a view when nothing is shortened). */
export function clipExtents(b: Buffer, length: number, count = MAX_EXTENTS): Buffer {
  let covered = 0;
  for (let at = 0; at < b.length && at / EXTENT_SIZE < count; at += EXTENT_SIZE) {
    const n = b.readUInt32BE(at);
    if (covered + n >= length) {
      if (covered + n === length) return b.subarray(0, at + EXTENT_SIZE);
      const out = Buffer.from(b.subarray(0, at + EXTENT_SIZE));
      out.writeUInt32BE(length - covered, at);
      return out;
    }
    covered += n;
  }
  return b.subarray(0, Math.min(b.length, count * EXTENT_SIZE));
}

/**
 * The answers for consecutive pieces of a range (piece i is `pieceLengths[i]` bytes) as one answer:
 * neighbours with the same flags merged, at most MAX_EXTENTS, and ending after the first piece
 * whose answer covers less than the piece (what follows it is not adjacent).
 */
export function joinExtents(parts: readonly Buffer[], pieceLengths: readonly number[]): Buffer {
  const out: ExtentDescriptor[] = [];
  for (let i = 0; i < parts.length; i++) {
    const b = parts[i]!;
    let covered = 0;
    for (let at = 0; at < b.length; at += EXTENT_SIZE) {
      const length = b.readUInt32BE(at);
      const flags = b.readUInt32BE(at + 4);
      covered += length;
      const last = out[out.length - 1];
      if (last !== undefined && last.flags === flags && last.length + length <= 0xffff_ffff) last.length += length;
      else if (out.length === MAX_EXTENTS) return encodeExtents(out);
      else out.push({ length, flags });
    }
    if (covered < pieceLengths[i]!) break;
  }
  return encodeExtents(out);
}

/** The answer for a range that is all data. */
export function allData(length: number): Buffer {
  return encodeExtents([{ length: Math.min(length, 0xffff_ffff), flags: 0 }]);
}
