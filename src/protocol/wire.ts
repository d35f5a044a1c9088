// DST wire protocol v2: pure codec, no I/O. Byte layout documented in man/dst-protocol.7.
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
}

export const Flag = {
  FUA: 0x01,
  REPLAY: 0x02,
} as const;
export const KNOWN_FLAGS = Flag.FUA | Flag.REPLAY;

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

function writeU64(buf: Buffer, value: number, off: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), off);
  buf.writeUInt32BE(value >>> 0, off + 4);
}

function readU64(buf: Buffer, off: number, field: string): number {
  const hi = buf.readUInt32BE(off);
  if (hi > 0x1f_ffff) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: ${field} exceeds 2^53`);
  return hi * 0x1_0000_0000 + buf.readUInt32BE(off + 4);
}

/** Encode the 48-byte header. */
export function encodeHeader(h: FrameHeader, into: Buffer = Buffer.allocUnsafe(HEADER_SIZE)): Buffer {
  into.writeUInt32BE(WIRE_MAGIC, 0);
  into.writeUInt8(WIRE_VERSION, 4);
  into.writeUInt8(h.cmd, 5);
  into.writeUInt8(h.op, 6);
  into.writeUInt8(h.flags, 7);
  into.writeUInt32BE(h.status >>> 0, 8);
  into.writeUInt32BE(h.length >>> 0, 12);
  writeU64(into, h.id, 16);
  writeU64(into, h.offset, 24);
  writeU64(into, h.ackedBelow, 32);
  into.writeUInt32BE(h.payloadLength >>> 0, 40);
  into.writeUInt16BE(h.tagLength, 44);
  into.writeUInt16BE(0, 46);
  return into;
}

/** Decode and check a header (magic, version, sizes). Throws DST_ERR_BAD_FRAME. */
export function decodeHeader(buf: Buffer, maxPayload = MAX_PAYLOAD): FrameHeader {
  if (buf.length < HEADER_SIZE) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: header needs ${HEADER_SIZE} bytes, got ${buf.length}`);
  const magic = buf.readUInt32BE(0);
  if (magic !== WIRE_MAGIC) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: magic 0x${magic.toString(16).padStart(8, '0')} is not DST2`);
  const version = buf.readUInt8(4);
  if (version !== WIRE_VERSION) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: protocol version ${version}, expected ${WIRE_VERSION}`);
  const cmd = buf.readUInt8(5);
  if (!(cmd in Cmd) || typeof Cmd[cmd] !== 'string') throw new DstError('DST_ERR_BAD_FRAME', `bad frame: unknown command ${cmd}`);
  const payloadLength = buf.readUInt32BE(40);
  if (payloadLength > maxPayload) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: payload of ${payloadLength} bytes exceeds the limit of ${maxPayload}`);
  const tagLength = buf.readUInt16BE(44);
  if (tagLength > MAX_TAG) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: tag of ${tagLength} bytes exceeds ${MAX_TAG}`);
  if (buf.readUInt16BE(46) !== 0) throw new DstError('DST_ERR_BAD_FRAME', 'bad frame: reserved field is not zero');
  return {
    cmd,
    op: buf.readUInt8(6),
    flags: buf.readUInt8(7),
    status: buf.readUInt32BE(8),
    length: buf.readUInt32BE(12),
    id: readU64(buf, 16, 'id'),
    offset: readU64(buf, 24, 'offset'),
    ackedBelow: readU64(buf, 32, 'ackedBelow'),
    payloadLength,
    tagLength,
  };
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
  const header = encodeHeader({
    cmd: f.cmd, op: f.op ?? Op.NONE, flags: f.flags ?? 0, status: f.status ?? 0, length: f.length ?? 0,
    id: f.id ?? 0, offset: f.offset ?? 0, ackedBelow: f.ackedBelow ?? 0,
    payloadLength: payload?.length ?? 0, tagLength: tag?.length ?? 0,
  });
  const out = [header];
  if (payload && payload.length) out.push(payload);
  if (tag && tag.length) out.push(tag);
  return out;
}

/**
 * Streaming frame decoder: feed() chunks as they arrive, next() pulls one complete frame or null.
 * Pull-style so the owner can stop pulling (backpressure) between frames. Buffered bytes are
 * bounded by one frame (header + max payload + tag) plus the chunk being fed.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: FrameHeader | null = null;
  private headerBytes: Buffer | null = null;

  constructor(private readonly maxPayload = MAX_PAYLOAD) {}

  feed(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Bytes received but not yet returned as frames. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** True when no partial frame is buffered (a clean frame boundary). */
  get atBoundary(): boolean {
    return this.buffered === 0 && this.header === null;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      this.buffered -= n;
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const want = n - filled;
      if (c.length <= want) {
        c.copy(out, filled);
        filled += c.length;
        this.chunks.shift();
      } else {
        c.copy(out, filled, 0, want);
        this.chunks[0] = c.subarray(want);
        filled += want;
      }
    }
    this.buffered -= n;
    return out;
  }

  /** Next complete frame, or null if more bytes are needed. Throws DST_ERR_BAD_FRAME. */
  next(): Frame | null {
    if (!this.header) {
      if (this.buffered < HEADER_SIZE) return null;
      const bytes = this.take(HEADER_SIZE);
      this.header = decodeHeader(bytes, this.maxPayload);
      this.headerBytes = Buffer.from(bytes); // own copy: the AAD must not alias a reused chunk
    }
    const h = this.header;
    const need = h.payloadLength + h.tagLength;
    if (this.buffered < need) return null;
    const payload = h.payloadLength ? this.take(h.payloadLength) : EMPTY;
    const tag = h.tagLength ? this.take(h.tagLength) : EMPTY;
    const frame: Frame = { ...h, header: this.headerBytes!, payload, tag };
    this.header = null;
    this.headerBytes = null;
    return frame;
  }
}

const EMPTY = Buffer.alloc(0);

// ---- HELLO / HELLO_REPLY / AUTH payloads: typed TLV fields (u16 type, u16 length, value).
// Unknown field types are skipped, so a newer peer may add fields an older one ignores.

export const Access = { READ: 1, WRITE: 2 } as const;

export interface Hello {
  /** protocol version the client speaks */
  version: number;
  /** "" = the default export */
  exportName: string;
  /** 16 random bytes per remote `start`, kept across reconnects */
  sessionId: Buffer;
  /** requested Access bits */
  access: number;
  /** canonical suite name, e.g. "none", "aes-gcm" */
  suite: string;
  /** first 8 bytes of SHA-256 of the client's key; null = no key */
  keyId: Buffer | null;
  /** 32 random bytes, fresh per handshake */
  nonce: Buffer;
}

export interface HelloReply {
  /** 16-byte export identity (UUID stored in the export's state dir) */
  identity: Buffer;
  size: number;
  blockSize: number;
  maxRequest: number;
  /** granted Access bits */
  granted: number;
  suite: string;
  nonce: Buffer;
  /** human-readable reason when the frame's status refuses the HELLO */
  message: string | null;
}

export interface Auth {
  /** HMAC(confirm key, HELLO transcript) */
  proof: Buffer;
}

enum HelloField { VERSION = 1, EXPORT_NAME = 2, SESSION_ID = 3, ACCESS = 4, SUITE = 5, KEY_ID = 6, NONCE = 7 }
enum ReplyField { IDENTITY = 1, SIZE = 2, BLOCK_SIZE = 3, MAX_REQUEST = 4, GRANTED = 5, SUITE = 6, NONCE = 7, MESSAGE = 8 }
enum AuthField { PROOF = 1 }

function tlv(type: number, value: Buffer): Buffer {
  if (value.length > 0xffff) throw new DstError('DST_ERR_INVALID', `field ${type} too long (${value.length} bytes)`);
  const out = Buffer.allocUnsafe(4 + value.length);
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(value.length, 2);
  value.copy(out, 4);
  return out;
}

const u8 = (n: number): Buffer => Buffer.from([n & 0xff]);
const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };
const u64 = (n: number): Buffer => { const b = Buffer.alloc(8); writeU64(b, n, 0); return b; };

function parseTlv(buf: Buffer, what: string): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off < buf.length) {
    if (off + 4 > buf.length) throw new DstError('DST_ERR_BAD_FRAME', `bad ${what}: field header cut at byte ${off}`);
    const type = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2);
    if (off + 4 + len > buf.length) throw new DstError('DST_ERR_BAD_FRAME', `bad ${what}: field ${type} runs past the payload`);
    if (out.has(type)) throw new DstError('DST_ERR_BAD_FRAME', `bad ${what}: field ${type} repeated`);
    out.set(type, buf.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return out;
}

function need(fields: Map<number, Buffer>, type: number, size: number | null, what: string, name: string): Buffer {
  const v = fields.get(type);
  if (!v) throw new DstError('DST_ERR_BAD_FRAME', `bad ${what}: ${name} missing`);
  if (size !== null && v.length !== size) throw new DstError('DST_ERR_BAD_FRAME', `bad ${what}: ${name} is ${v.length} bytes, expected ${size}`);
  return v;
}

export function encodeHello(h: Hello): Buffer {
  const parts = [
    tlv(HelloField.VERSION, u8(h.version)),
    tlv(HelloField.EXPORT_NAME, Buffer.from(h.exportName, 'utf8')),
    tlv(HelloField.SESSION_ID, h.sessionId),
    tlv(HelloField.ACCESS, u8(h.access)),
    tlv(HelloField.SUITE, Buffer.from(h.suite, 'utf8')),
    tlv(HelloField.NONCE, h.nonce),
  ];
  if (h.keyId) parts.push(tlv(HelloField.KEY_ID, h.keyId));
  return Buffer.concat(parts);
}

export function decodeHello(buf: Buffer): Hello {
  const w = 'HELLO';
  const f = parseTlv(buf, w);
  const keyId = f.get(HelloField.KEY_ID);
  if (keyId && keyId.length !== 8) throw new DstError('DST_ERR_BAD_FRAME', `bad ${w}: key id is ${keyId.length} bytes, expected 8`);
  return {
    version: need(f, HelloField.VERSION, 1, w, 'version')[0]!,
    exportName: need(f, HelloField.EXPORT_NAME, null, w, 'export name').toString('utf8'),
    sessionId: Buffer.from(need(f, HelloField.SESSION_ID, 16, w, 'session id')),
    access: need(f, HelloField.ACCESS, 1, w, 'access')[0]!,
    suite: need(f, HelloField.SUITE, null, w, 'suite').toString('utf8'),
    keyId: keyId ? Buffer.from(keyId) : null,
    nonce: Buffer.from(need(f, HelloField.NONCE, 32, w, 'nonce')),
  };
}

export function encodeHelloReply(r: HelloReply): Buffer {
  const parts = [
    tlv(ReplyField.IDENTITY, r.identity),
    tlv(ReplyField.SIZE, u64(r.size)),
    tlv(ReplyField.BLOCK_SIZE, u32(r.blockSize)),
    tlv(ReplyField.MAX_REQUEST, u32(r.maxRequest)),
    tlv(ReplyField.GRANTED, u8(r.granted)),
    tlv(ReplyField.SUITE, Buffer.from(r.suite, 'utf8')),
    tlv(ReplyField.NONCE, r.nonce),
  ];
  if (r.message !== null) parts.push(tlv(ReplyField.MESSAGE, Buffer.from(r.message, 'utf8')));
  return Buffer.concat(parts);
}

export function decodeHelloReply(buf: Buffer): HelloReply {
  const w = 'HELLO_REPLY';
  const f = parseTlv(buf, w);
  return {
    identity: Buffer.from(need(f, ReplyField.IDENTITY, 16, w, 'identity')),
    size: readU64(need(f, ReplyField.SIZE, 8, w, 'size'), 0, 'size'),
    blockSize: need(f, ReplyField.BLOCK_SIZE, 4, w, 'block size').readUInt32BE(0),
    maxRequest: need(f, ReplyField.MAX_REQUEST, 4, w, 'max request').readUInt32BE(0),
    granted: need(f, ReplyField.GRANTED, 1, w, 'granted')[0]!,
    suite: need(f, ReplyField.SUITE, null, w, 'suite').toString('utf8'),
    nonce: Buffer.from(need(f, ReplyField.NONCE, 32, w, 'nonce')),
    message: f.get(ReplyField.MESSAGE)?.toString('utf8') ?? null,
  };
}

/** A refusal: HELLO_REPLY with a nonzero status carries only a message. */
export function encodeRefusal(message: string): Buffer {
  return tlv(ReplyField.MESSAGE, Buffer.from(message, 'utf8'));
}

export function decodeRefusal(buf: Buffer): string {
  return parseTlv(buf, 'HELLO_REPLY').get(ReplyField.MESSAGE)?.toString('utf8') ?? 'refused';
}

export function encodeAuth(a: Auth): Buffer {
  return tlv(AuthField.PROOF, a.proof);
}

export function decodeAuth(buf: Buffer): Auth {
  return { proof: Buffer.from(need(parseTlv(buf, 'AUTH'), AuthField.PROOF, null, 'AUTH', 'proof')) };
}
