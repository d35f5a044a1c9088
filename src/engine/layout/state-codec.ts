// The mirror's state as bytes (pure): the same encoding is the state dir's file and the body of
// every leg's metadata copy (leg-meta.ts), so a fresh engine rebuilds from a leg exactly what it
// would have read from its own state dir. CRC32 over everything before it.
import { crc32 } from 'node:zlib';
import { UUID_BYTES, type Lineage } from './lineage.js';

const MAGIC = Buffer.from('DSTMIRR1', 'latin1');
/** 3: the lineage (mirror uuid, session, generations) */
export const STATE_VERSION = 3;
/**
 * magic, version, legs, flags, region size, device size, active count, compare mask,
 * uuid, session, current generation, history count; then per leg its generation and member identity
 */
const HEADER = 8 + 4 + 4 + 4 + 8 + 8 + 4 + 4 + UUID_BYTES + 8 + 8 + 4;
const FLAG_CLEAN = 1;

export interface MirrorSnapshot {
  legs: number;
  regionSize: number;
  deviceSize: number;
  /** the engine stopped cleanly: nothing was being written */
  clean: boolean;
  /** bit `leg`: the leg's marks are unknowns (compare before copying) */
  compareMask: number;
  /** regions of the activity log */
  active: number[];
  /** per leg: regions it misses */
  bits: Uint8Array[];
  lineage: Lineage;
}

export function regionCount(deviceSize: number, regionSize: number): number {
  return Math.ceil(deviceSize / regionSize);
}

export function bitmapBytes(deviceSize: number, regionSize: number): number {
  return Math.ceil(regionCount(deviceSize, regionSize) / 8);
}

/** Bytes the encoding of a mirror of this geometry takes with `active` regions in its log. */
export function encodedSize(legs: number, deviceSize: number, regionSize: number, active: number, history: number): number {
  return HEADER + legs * (8 + UUID_BYTES) + history * 8 + active * 4 + legs * bitmapBytes(deviceSize, regionSize) + 4;
}

export function encodeState(s: MirrorSnapshot): Buffer {
  const l = s.lineage;
  const buf = Buffer.alloc(encodedSize(s.legs, s.deviceSize, s.regionSize, s.active.length, l.history.length));
  MAGIC.copy(buf, 0);
  let at = buf.writeUInt32BE(STATE_VERSION, 8);
  at = buf.writeUInt32BE(s.legs, at);
  at = buf.writeUInt32BE(s.clean ? FLAG_CLEAN : 0, at);
  at = buf.writeBigUInt64BE(BigInt(s.regionSize), at);
  at = buf.writeBigUInt64BE(BigInt(s.deviceSize), at);
  at = buf.writeUInt32BE(s.active.length, at);
  at = buf.writeUInt32BE(s.compareMask >>> 0, at);
  at += l.uuid.copy(buf, at, 0, UUID_BYTES);
  at = buf.writeBigUInt64BE(l.session, at);
  at = buf.writeBigUInt64BE(l.current, at);
  at = buf.writeUInt32BE(l.history.length, at);
  for (let i = 0; i < s.legs; i++) at = buf.writeBigUInt64BE(l.legGen[i] ?? 0n, at);
  for (let i = 0; i < s.legs; i++) at += (l.members[i] ?? Buffer.alloc(UUID_BYTES)).copy(buf, at, 0, UUID_BYTES);
  for (const g of l.history) at = buf.writeBigUInt64BE(g, at);
  for (const r of s.active) at = buf.writeUInt32BE(r, at);
  for (const b of s.bits) at += Buffer.from(b.buffer, b.byteOffset, b.byteLength).copy(buf, at);
  buf.writeUInt32BE(crc32(buf.subarray(0, at)), at);
  return buf;
}

/** The snapshot, or why these bytes are not one. */
export function decodeState(raw: Buffer): MirrorSnapshot | string {
  if (raw.length < HEADER + 4 || !raw.subarray(0, 8).equals(MAGIC)) return 'not a dst mirror state';
  if (crc32(raw.subarray(0, raw.length - 4)) !== raw.readUInt32BE(raw.length - 4)) return 'its checksum does not match';
  const version = raw.readUInt32BE(8);
  if (version !== STATE_VERSION) return `version ${version}, expected ${STATE_VERSION}`;
  const legs = raw.readUInt32BE(12);
  const clean = (raw.readUInt32BE(16) & FLAG_CLEAN) !== 0;
  const regionSize = Number(raw.readBigUInt64BE(20));
  const deviceSize = Number(raw.readBigUInt64BE(28));
  const activeCount = raw.readUInt32BE(36);
  const compareMask = raw.readUInt32BE(40) | 0;
  if (legs < 1 || legs > 32 || regionSize < 1 || deviceSize < 1) return `bad geometry (${legs} legs, region ${regionSize}, size ${deviceSize})`;
  let at = 44;
  const uuid = Buffer.from(raw.subarray(at, at + UUID_BYTES));
  at += UUID_BYTES;
  const session = raw.readBigUInt64BE(at);
  const current = raw.readBigUInt64BE(at + 8);
  const historyCount = raw.readUInt32BE(at + 16);
  at += 20;
  if (raw.length !== encodedSize(legs, deviceSize, regionSize, activeCount, historyCount)) return 'wrong length';
  const legGen: bigint[] = [];
  for (let i = 0; i < legs; i++, at += 8) legGen.push(raw.readBigUInt64BE(at));
  const members: Buffer[] = [];
  for (let i = 0; i < legs; i++, at += UUID_BYTES) members.push(Buffer.from(raw.subarray(at, at + UUID_BYTES)));
  const history: bigint[] = [];
  for (let i = 0; i < historyCount; i++, at += 8) history.push(raw.readBigUInt64BE(at));
  const regions = regionCount(deviceSize, regionSize);
  const active: number[] = [];
  for (let i = 0; i < activeCount; i++, at += 4) {
    const r = raw.readUInt32BE(at);
    if (r >= regions) return `active region ${r} out of range`;
    active.push(r);
  }
  const n = bitmapBytes(deviceSize, regionSize);
  const bits: Uint8Array[] = [];
  for (let i = 0; i < legs; i++, at += n) bits.push(new Uint8Array(raw.subarray(at, at + n)));
  return { legs, regionSize, deviceSize, clean, compareMask, active, bits, lineage: { uuid, session, current, history, legGen, members } };
}
