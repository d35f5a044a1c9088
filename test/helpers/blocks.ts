// Deterministic block content: every block's bytes derive from its block number and a version
// counter, so every read can be checked (right block, right bytes) and a test can prove no
// block's version ever goes backwards (a stale write landing after a newer one).
//
// Layout of one block (size ≥ 32, a multiple of 4; default 4096):
//   0   8  magic "DSTBLK\0\1"
//   8   8  block number (u64 BE)
//  16   4  version (u32 BE; version 0 is never written: an all-zero block reads as version 0)
//  20   4  block size (u32 BE)
//  24   4  check word = mix(blockNo, version, size) (u32 BE), so a header is never accidental
//  28   4  zero
//  32  ..  fill: a 32-bit xorshift stream seeded by (blockNo, version)

export const BLOCK_MAGIC = Buffer.from('DSTBLK\x00\x01', 'latin1');
export const BLOCK_HEADER = 32;
export const DEFAULT_BLOCK_SIZE = 4096;

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < BLOCK_HEADER || size % 4 !== 0) {
    throw new Error(`block size ${size} must be an integer ≥ ${BLOCK_HEADER} and a multiple of 4`);
  }
}

function checkBlockNo(blockNo: number): void {
  if (!Number.isSafeInteger(blockNo) || blockNo < 0) throw new Error(`block number ${blockNo} must be a non-negative safe integer`);
}

/** 32-bit mixer (murmur3 finalizer). */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function mix(blockNo: number, version: number, salt: number): number {
  const lo = blockNo >>> 0;
  const hi = Math.floor(blockNo / 0x1_0000_0000) >>> 0;
  let h = fmix(lo ^ 0x9e3779b9 ^ salt);
  h = fmix(h ^ hi ^ 0x7f4a7c15);
  h = fmix(h ^ (version >>> 0) ^ 0x94d049bb);
  return h;
}

/** Write block `blockNo` at `version` into `into` at `offset` (size bytes). */
export function writeBlock(into: Buffer, offset: number, blockNo: number, version: number, size = DEFAULT_BLOCK_SIZE): void {
  checkSize(size);
  checkBlockNo(blockNo);
  if (!Number.isInteger(version) || version < 0 || version > 0xffff_ffff) throw new Error(`version ${version} must be a u32`);
  if (offset < 0 || offset + size > into.length) throw new Error(`block of ${size} bytes at offset ${offset} does not fit a buffer of ${into.length}`);
  if (version === 0) {
    into.fill(0, offset, offset + size);
    return;
  }
  BLOCK_MAGIC.copy(into, offset);
  into.writeUInt32BE(Math.floor(blockNo / 0x1_0000_0000), offset + 8);
  into.writeUInt32BE(blockNo >>> 0, offset + 12);
  into.writeUInt32BE(version, offset + 16);
  into.writeUInt32BE(size, offset + 20);
  into.writeUInt32BE(mix(blockNo, version, size), offset + 24);
  into.writeUInt32BE(0, offset + 28);
  let x = mix(blockNo, version, 0x51ed270b) || 0x2545f491; // xorshift state must not be 0
  for (let i = offset + BLOCK_HEADER; i < offset + size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    into.writeInt32LE(x | 0, i);
  }
}

/** The bytes of block `blockNo` at `version` (version 0 = all zeros, a never-written block). */
export function blockContent(blockNo: number, version: number, size = DEFAULT_BLOCK_SIZE): Buffer {
  const b = Buffer.alloc(size);
  writeBlock(b, 0, blockNo, version, size);
  return b;
}

/** Consecutive blocks first..first+n-1, block i at versions[i] (or one version for all). */
export function blocksContent(firstBlock: number, versions: number | readonly number[], count?: number, size = DEFAULT_BLOCK_SIZE): Buffer {
  const n = typeof versions === 'number' ? (count ?? 1) : versions.length;
  const b = Buffer.alloc(n * size);
  for (let i = 0; i < n; i++) {
    const v = typeof versions === 'number' ? versions : versions[i]!;
    writeBlock(b, i * size, firstBlock + i, v, size);
  }
  return b;
}

export interface CheckOptions {
  /** accept an all-zero block as version 0 (never written); default true */
  allowZero?: boolean;
}

function hex(buf: Buffer, start: number, len: number): string {
  return buf.subarray(start, Math.min(buf.length, start + len)).toString('hex');
}

/**
 * Check that `buf` is a valid image of block `blockNo` (its whole length is the block size) and
 * return its version; throws an Error naming the block and what is wrong.
 */
export function checkBlock(buf: Buffer, blockNo: number, opts: CheckOptions = {}): { version: number } {
  const size = buf.length;
  checkSize(size);
  checkBlockNo(blockNo);
  const where = `block ${blockNo}`;
  if (!buf.subarray(0, BLOCK_MAGIC.length).equals(BLOCK_MAGIC)) {
    let nonZero = -1;
    for (let i = 0; i < size; i++) if (buf[i] !== 0) { nonZero = i; break; }
    if (nonZero < 0) {
      if (opts.allowZero ?? true) return { version: 0 };
      throw new Error(`${where}: all ${size} bytes are zero (never written, or zeroed)`);
    }
    throw new Error(`${where}: bad magic ${hex(buf, 0, 8)} (expected ${BLOCK_MAGIC.toString('hex')}): not a dst test block; first non-zero byte at offset ${nonZero}, first 32 bytes ${hex(buf, 0, 32)}`);
  }
  const gotBlock = buf.readUInt32BE(8) * 0x1_0000_0000 + buf.readUInt32BE(12);
  const version = buf.readUInt32BE(16);
  const gotSize = buf.readUInt32BE(20);
  if (gotSize !== size) throw new Error(`${where}: header says block size ${gotSize}, read ${size} bytes (misaligned read or wrong block size)`);
  if (buf.readUInt32BE(24) !== mix(gotBlock, version, gotSize) || buf.readUInt32BE(28) !== 0 || version === 0) {
    throw new Error(`${where}: corrupt header ${hex(buf, 0, 32)}`);
  }
  if (gotBlock !== blockNo) {
    throw new Error(`${where}: holds block ${gotBlock} (version ${version}) instead: misdirected write or read`);
  }
  const expected = blockContent(blockNo, version, size);
  if (!expected.equals(buf)) {
    let first = -1;
    let count = 0;
    for (let i = 0; i < size; i++) {
      if (expected[i] !== buf[i]) {
        if (first < 0) first = i;
        count++;
      }
    }
    throw new Error(`${where} version ${version}: ${count} byte(s) differ, first at offset ${first} (got ${hex(buf, first, 16)}, expected ${hex(expected, first, 16)})`);
  }
  return { version };
}

/** Check consecutive blocks starting at firstBlock; returns their versions. */
export function checkBlocks(buf: Buffer, firstBlock: number, size = DEFAULT_BLOCK_SIZE, opts: CheckOptions = {}): number[] {
  if (buf.length % size !== 0) throw new Error(`buffer of ${buf.length} bytes is not a whole number of ${size}-byte blocks`);
  const out: number[] = [];
  for (let off = 0, i = 0; off < buf.length; off += size, i++) out.push(checkBlock(buf.subarray(off, off + size), firstBlock + i, opts).version);
  return out;
}

/**
 * Tracks versions per block across a workload: the versions issued (submitted), acknowledged
 * (the write completed without error) and seen by reads. A read must show a version that is
 * ≥ the last acknowledged one, ≤ the last issued one, and never older than one read before.
 */
export class BlockTracker {
  private readonly issued = new Map<number, number>();
  private readonly acked = new Map<number, number>();
  private readonly seen = new Map<number, number>();

  constructor(readonly size = DEFAULT_BLOCK_SIZE) {
    checkSize(size);
  }

  /** Next version to write for blockNo (1, 2, ...); recorded as issued. */
  next(blockNo: number): number {
    const v = (this.issued.get(blockNo) ?? 0) + 1;
    this.issued.set(blockNo, v);
    return v;
  }

  /** The content of the next version of blockNo (issues it). */
  nextContent(blockNo: number): { version: number; data: Buffer } {
    const version = this.next(blockNo);
    return { version, data: blockContent(blockNo, version, this.size) };
  }

  /** The write of `version` to blockNo completed successfully. */
  ack(blockNo: number, version: number): void {
    if (version > (this.issued.get(blockNo) ?? 0)) throw new Error(`block ${blockNo}: version ${version} acknowledged but never issued`);
    if (version > (this.acked.get(blockNo) ?? 0)) this.acked.set(blockNo, version);
  }

  /** Check a read of blockNo; returns its version. Throws naming the block on any violation. */
  check(blockNo: number, buf: Buffer): number {
    const { version } = checkBlock(buf, blockNo);
    const acked = this.acked.get(blockNo) ?? 0;
    const issued = this.issued.get(blockNo) ?? 0;
    const seen = this.seen.get(blockNo) ?? 0;
    if (version < acked) throw new Error(`block ${blockNo}: read version ${version}, older than acknowledged version ${acked} (a stale write landed or a write was lost)`);
    if (version > issued) throw new Error(`block ${blockNo}: read version ${version}, newer than any issued (${issued})`);
    if (version < seen) throw new Error(`block ${blockNo}: read version ${version} after version ${seen} was read: version went backwards`);
    this.seen.set(blockNo, version);
    return version;
  }

  /** Check consecutive blocks read from firstBlock. */
  checkRange(firstBlock: number, buf: Buffer): number[] {
    if (buf.length % this.size !== 0) throw new Error(`read of ${buf.length} bytes is not a whole number of ${this.size}-byte blocks`);
    const out: number[] = [];
    for (let off = 0, i = 0; off < buf.length; off += this.size, i++) out.push(this.check(firstBlock + i, buf.subarray(off, off + this.size)));
    return out;
  }

  issuedVersion(blockNo: number): number { return this.issued.get(blockNo) ?? 0; }
  ackedVersion(blockNo: number): number { return this.acked.get(blockNo) ?? 0; }
}
