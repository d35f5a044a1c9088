// DST wire protocol v2, the frame header: pure codec, no I/O, no state. Byte layout documented in
// man/dst-protocol.7. The HELLO/AUTH payloads are in wire-hello.ts, the streaming decoder in
// frame-decoder.ts.
//
// Every frame = 48-byte big-endian header, then `payloadLength` bytes of payload, then
// `tagLength` bytes of tag (authentication tag when a suite is on; 0 otherwise).
//
//  off size field
//   0   4   magic 0x44535432 ("DST2")
//   4   1   version (2)
//   5   1   cmd          (Cmd)
//   6   1   op           (Op; 0 for non-IO frames)
//   7   1   flags        (Flag bits)
//   8   4   status       (errno, 0 = ok; in IO_RESPONSE and HELLO_REPLY)
//  12   4   length       (I/O length in bytes for IO/IO_RESPONSE; 0 otherwise)
//  16   8   id           (transaction id; PING/PONG echo it)
//  24   8   offset       (byte offset for IO)
//  32   8   ackedBelow   (IO: every id below it has completed at the client)
//  40   4   payloadLength
//  44   2   tagLength
//  46   2   reserved (0)
//
// Having an explicit payloadLength makes framing independent of command semantics: a frame
// can always be skipped whole, and semantic checks (a WRITE carries `length` bytes) happen once,
// in the export's validator.
import { DstError } from '../util/errors.js';
import { ZeroFlag } from './thin.js';

export const WIRE_MAGIC = 0x44535432;
export const WIRE_VERSION = 2;
export const HEADER_SIZE = 48;
/** Absolute cap on one frame's payload: max-request cap (32 MiB) plus room for crypto framing. */
export const MAX_PAYLOAD = 32 * 1024 * 1024 + 4096;
export const MAX_TAG = 64;

export enum Cmd {
  HELLO = 1,
  HELLO_REPLY = 2,
  AUTH = 3,
  IO = 4,
  IO_RESPONSE = 5,
  PING = 6,
  PONG = 7,
  CLOSE = 8,
}

export enum Op {
  NONE = 0,
  READ = 1,
  WRITE = 2,
  FLUSH = 3,
  TRIM = 4,
  WRITE_ZEROES = 5,
  /** holes and zeroes in [offset, offset+length): IO_RESPONSE payload = extent descriptors (protocol/thin.ts) */
  BLOCK_STATUS = 6,
  /** SHA-256 of [offset, offset+length): a 32-byte IO_RESPONSE payload (online verify, resync) */
  DIGEST = 7,
}

/** Size of a DIGEST's answer (SHA-256). */
export const DIGEST_SIZE = 32;

/**
 * Ops that only answer data and change nothing (READ, DIGEST): a replay simply runs again, and the
 * export's dedup never records them.
 */
export function opAnswersWithData(op: number): boolean {
  return op === Op.READ || op === Op.DIGEST || op === Op.BLOCK_STATUS;
}

export const Flag = {
  FUA: 0x01,
  REPLAY: 0x02,
  /** WRITE_ZEROES: the range stays allocated (no hole) */
  NO_HOLE: 0x04,
  /** WRITE_ZEROES: fail with ENOTSUP at once rather than write zeroes */
  FAST_ZERO: 0x08,
} as const;
export const KNOWN_FLAGS = Flag.FUA | Flag.REPLAY | Flag.NO_HOLE | Flag.FAST_ZERO;
/** Flags only WRITE_ZEROES may carry. */
export const ZERO_FLAGS = Flag.NO_HOLE | Flag.FAST_ZERO;

/** ZeroFlag bits (protocol/thin.ts) as the wire's flags, and back: the one mapping of both sides. */
export function zeroFlagsToWire(zero: number): number {
  return ((zero & ZeroFlag.NO_HOLE) !== 0 ? Flag.NO_HOLE : 0) | ((zero & ZeroFlag.FAST_ZERO) !== 0 ? Flag.FAST_ZERO : 0);
}

export function zeroFlagsFromWire(wire: number): number {
  return ((wire & Flag.NO_HOLE) !== 0 ? ZeroFlag.NO_HOLE : 0) | ((wire & Flag.FAST_ZERO) !== 0 ? ZeroFlag.FAST_ZERO : 0);
}

export interface FrameHeader {
  cmd: Cmd;
  op: Op;
  flags: number;
  status: number;
  length: number;
  id: number;
  offset: number;
  ackedBelow: number;
  payloadLength: number;
  tagLength: number;
}

export interface Frame extends FrameHeader {
  /** the 48 header bytes as received (AAD for sealed suites) */
  header: Buffer;
  payload: Buffer;
  tag: Buffer;
}

export function cmdName(cmd: number): string {
  return Cmd[cmd] ?? `cmd#${cmd}`;
}

export function opName(op: number): string {
  return Op[op] ?? `op#${op}`;
}

export function writeU64(buf: Buffer, value: number, off: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), off);
  buf.writeUInt32BE(value >>> 0, off + 4);
}

export function readU64(buf: Buffer, off: number, field: string): number {
  const hi = buf.readUInt32BE(off);
  if (hi > 0x1f_ffff) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: ${field} exceeds 2^53`);
  return hi * 0x1_0000_0000 + buf.readUInt32BE(off + 4);
}

/** Write the 48-byte header fields into `into` at `off` (hot path: no intermediate object). */
function writeHeaderFields(into: Buffer, off: number, cmd: number, op: number, flags: number, status: number,
  length: number, id: number, offset: number, ackedBelow: number, payloadLength: number, tagLength: number): void {
  into.writeUInt32BE(WIRE_MAGIC, off);
  into[off + 4] = WIRE_VERSION;
  into[off + 5] = cmd;
  into[off + 6] = op;
  into[off + 7] = flags;
  into.writeUInt32BE(status >>> 0, off + 8);
  into.writeUInt32BE(length >>> 0, off + 12);
  writeU64(into, id, off + 16);
  writeU64(into, offset, off + 24);
  writeU64(into, ackedBelow, off + 32);
  into.writeUInt32BE(payloadLength >>> 0, off + 40);
  into.writeUInt16BE(tagLength, off + 44);
  into.writeUInt16BE(0, off + 46);
}

/** Encode the 48-byte header. */
export function encodeHeader(h: FrameHeader, into: Buffer = Buffer.allocUnsafe(HEADER_SIZE)): Buffer {
  into.writeUInt8(h.cmd, 5); // range checks of the u8 fields (the hot path writes bytes directly)
  into.writeUInt8(h.op, 6);
  into.writeUInt8(h.flags, 7);
  writeHeaderFields(into, 0, h.cmd, h.op, h.flags, h.status, h.length, h.id, h.offset, h.ackedBelow, h.payloadLength, h.tagLength);
  return into;
}

/** KNOWN_CMD[c] === 1 for every Cmd value. */
const KNOWN_CMD = new Uint8Array(256);
for (const v of Object.values(Cmd)) if (typeof v === 'number') KNOWN_CMD[v] = 1;

/** Check the header at buf[off..off+48) (magic, version, command, sizes). Throws DST_ERR_BAD_FRAME. */
function checkHeader(buf: Buffer, off: number, maxPayload: number): void {
  const magic = buf.readUInt32BE(off);
  if (magic !== WIRE_MAGIC) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: magic 0x${magic.toString(16).padStart(8, '0')} is not DST2`);
  const version = buf[off + 4]!;
  if (version !== WIRE_VERSION) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: protocol version ${version}, expected ${WIRE_VERSION}`);
  const cmd = buf[off + 5]!;
  if (KNOWN_CMD[cmd] !== 1) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: unknown command ${cmd}`);
  const payloadLength = buf.readUInt32BE(off + 40);
  if (payloadLength > maxPayload) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: payload of ${payloadLength} bytes exceeds the limit of ${maxPayload}`);
  const tagLength = buf.readUInt16BE(off + 44);
  if (tagLength > MAX_TAG) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: tag of ${tagLength} bytes exceeds ${MAX_TAG}`);
  if (buf.readUInt16BE(off + 46) !== 0) throw new DstError('DST_ERR_BAD_FRAME', 'bad frame: reserved field is not zero');
}

const EMPTY = Buffer.alloc(0);

/**
 * Decode and check the header at buf[0..48) (magic, version, command, sizes) as a Frame whose
 * payload and tag are still to come (empty). The frame keeps buf's first 48 bytes as its header
 * (the AAD of sealed suites): the frame decoder passes a copy of its own. Throws DST_ERR_BAD_FRAME.
 */
export function decodeHeader(buf: Buffer, maxPayload = MAX_PAYLOAD): Frame {
  if (buf.length < HEADER_SIZE) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: header needs ${HEADER_SIZE} bytes, got ${buf.length}`);
  checkHeader(buf, 0, maxPayload);
  // One object literal with every field, always in this order: one hidden class for all frames.
  return {
    cmd: buf[5]!,
    op: buf[6]!,
    flags: buf[7]!,
    status: buf.readUInt32BE(8),
    length: buf.readUInt32BE(12),
    id: readU64(buf, 16, 'id'),
    offset: readU64(buf, 24, 'offset'),
    ackedBelow: readU64(buf, 32, 'ackedBelow'),
    payloadLength: buf.readUInt32BE(40),
    tagLength: buf.readUInt16BE(44),
    header: buf.length === HEADER_SIZE ? buf : buf.subarray(0, HEADER_SIZE),
    payload: EMPTY,
    tag: EMPTY,
  };
}

/** checkHeader() as a predicate. */
export function validHeader(buf: Buffer, off: number, maxPayload: number): boolean {
  try {
    checkHeader(buf, off, maxPayload);
    return true;
  } catch {
    return false;
  }
}

export interface FrameInit {
  cmd: Cmd;
  op?: Op;
  flags?: number;
  status?: number;
  length?: number;
  id?: number;
  offset?: number;
  ackedBelow?: number;
  payload?: Buffer | null;
  tag?: Buffer | null;
}

/** Encode a whole frame as buffers for one writev (header, payload, tag; empty parts omitted). */
export function encodeFrame(f: FrameInit): Buffer[] {
  const payload = f.payload ?? null;
  const tag = f.tag ?? null;
  const op = f.op ?? Op.NONE;
  const flags = f.flags ?? 0;
  if ((f.cmd & 0xff) !== f.cmd || (op & 0xff) !== op || (flags & 0xff) !== flags) {
    throw new DstError('DST_ERR_INVALID', `frame header field out of range (cmd ${f.cmd}, op ${op}, flags ${flags})`);
  }
  const header = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeaderFields(header, 0, f.cmd, op, flags, f.status ?? 0, f.length ?? 0, f.id ?? 0, f.offset ?? 0,
    f.ackedBelow ?? 0, payload === null ? 0 : payload.length, tag === null ? 0 : tag.length);
  if (payload === null || payload.length === 0) {
    return tag === null || tag.length === 0 ? [header] : [header, tag];
  }
  return tag === null || tag.length === 0 ? [header, payload] : [header, payload, tag];
}
