// NBD protocol: pure codec, no I/O. Constants are the 16/32-bit WIRE values from
// NetworkBlockDevice/nbd doc/proto.md (see /work/shared/reference/nbd-protocol.md), not the
// kernel's packed `type | flags << 16` values, and NBD_REPLY_TYPE_BLOCK_STATUS is 5.
//
// Server side: `NbdServerDecoder` is a pull-style streaming decoder. The owner feeds socket
// chunks, pulls whole messages with next(), and moves `phase` to 'transmission' once the
// negotiation is over (after the GO ack or the EXPORT_NAME reply). Every length read from the
// wire is checked against a bound BEFORE the bytes it announces are buffered.
//
// Encoders return a Buffer, or a Buffer[] when a data payload should go out with writev
// without being copied.
import { DstError } from '../util/errors.js';
import { StreamBuffer, type PayloadSource } from './stream-buffer.js';

// ── Magic numbers ────────────────────────────────────────────────────────────────────────────
export const NBD_MAGIC = 0x4e42444d41474943n;            // "NBDMAGIC"
export const NBD_IHAVEOPT = 0x49484156454f5054n;         // "IHAVEOPT"
export const NBD_OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_EXTENDED_REQUEST_MAGIC = 0x21e41c71;    // never negotiated by us
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;
export const NBD_EXTENDED_REPLY_MAGIC = 0x6e8a278c;      // never used by us

// ── Sizes and bounds ─────────────────────────────────────────────────────────────────────────
export const GREETING_SIZE = 18;            // NBDMAGIC · IHAVEOPT · handshake flags u16
export const CLIENT_FLAGS_SIZE = 4;
export const OPTION_HEADER_SIZE = 16;       // IHAVEOPT · option u32 · length u32
export const OPTION_REPLY_HEADER_SIZE = 20; // magic u64 · option u32 · type u32 · length u32
export const REQUEST_HEADER_SIZE = 28;      // compact request
export const SIMPLE_REPLY_SIZE = 16;
export const STRUCTURED_HEADER_SIZE = 20;
export const EXPORT_NAME_PAD = 124;
/** Largest option payload the server buffers (GO/INFO/LIST carry a name of ≤ 4096 bytes). */
export const MAX_OPTION_DATA = 64 * 1024;
/** Largest WRITE payload accepted (the NBD default maximum, 2^25); larger → hard disconnect. */
export const MAX_PAYLOAD = 32 * 1024 * 1024;
/** Strings (export names, messages) MUST be ≤ 4096 bytes. */
export const MAX_STRING = 4096;

// ── Handshake ────────────────────────────────────────────────────────────────────────────────
export const HandshakeFlag = {
  FIXED_NEWSTYLE: 0x0001,
  NO_ZEROES: 0x0002,
} as const;

export const ClientFlag = {
  C_FIXED_NEWSTYLE: 0x00000001,
  C_NO_ZEROES: 0x00000002,
} as const;

export const Opt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const;

export const REP_ERR_BIT = 0x80000000;
export const Rep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_PLATFORM: 0x80000004,
  ERR_TLS_REQD: 0x80000005,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
  ERR_BLOCK_SIZE_REQD: 0x80000008,
  ERR_TOO_BIG: 0x80000009,
  ERR_EXT_HEADER_REQD: 0x8000000a,
} as const;

export const Info = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

// ── Transmission ─────────────────────────────────────────────────────────────────────────────
export const TxFlag = {
  HAS_FLAGS: 0x0001,
  READ_ONLY: 0x0002,
  SEND_FLUSH: 0x0004,
  SEND_FUA: 0x0008,
  ROTATIONAL: 0x0010,
  SEND_TRIM: 0x0020,
  SEND_WRITE_ZEROES: 0x0040,
  SEND_DF: 0x0080,
  CAN_MULTI_CONN: 0x0100,
  SEND_RESIZE: 0x0200,
  SEND_CACHE: 0x0400,
  SEND_FAST_ZERO: 0x0800,
  BLOCK_STATUS_PAYLOAD: 0x1000,
} as const;

export const Cmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
  RESIZE: 8,
} as const;

export const CmdFlag = {
  FUA: 0x0001,
  NO_HOLE: 0x0002,
  DF: 0x0004,
  REQ_ONE: 0x0008,
  FAST_ZERO: 0x0010,
  PAYLOAD_LEN: 0x0020,
} as const;

export const ReplyFlag = {
  DONE: 0x0001,
} as const;

export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  BLOCK_STATUS_EXT: 6,
  ERROR: 0x8001,
  ERROR_OFFSET: 0x8002,
} as const;

/** The only values the NBD error field carries. */
export const NbdErr = {
  OK: 0,
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;
export type NbdErrName = Exclude<keyof typeof NbdErr, 'OK'>;

// ── Names (logs, errors) ─────────────────────────────────────────────────────────────────────
function reverse(table: Record<string, number>): Map<number, string> {
  return new Map(Object.entries(table).map(([k, v]) => [v, k]));
}
const OPT_NAMES = reverse(Opt);
const REP_NAMES = reverse(Rep);
const CMD_NAMES = reverse(Cmd);
const ERR_NAMES = reverse(NbdErr);

export function optName(option: number): string { return `NBD_OPT_${OPT_NAMES.get(option) ?? option}`; }
export function repName(type: number): string { return `NBD_REP_${REP_NAMES.get(type) ?? `0x${type.toString(16)}`}`; }
export function cmdName(type: number): string { return `NBD_CMD_${CMD_NAMES.get(type) ?? type}`; }
export function nbdErrName(err: number): string { return ERR_NAMES.get(err) ?? `E${err}`; }

// ── errno → NBD error (DESIGN §8) ────────────────────────────────────────────────────────────
const ERRNO_MAP: Record<string, number> = {
  EPERM: NbdErr.EPERM,
  EIO: NbdErr.EIO,
  ENOMEM: NbdErr.ENOMEM,
  EINVAL: NbdErr.EINVAL,
  ENOSPC: NbdErr.ENOSPC,
  EOVERFLOW: NbdErr.EOVERFLOW,
  ENOTSUP: NbdErr.ENOTSUP,
  EOPNOTSUPP: NbdErr.ENOTSUP, // the same number on Linux
  ESHUTDOWN: NbdErr.ESHUTDOWN,
  ETIMEDOUT: NbdErr.EIO,
  ENOTCONN: NbdErr.EIO,
  ECONNRESET: NbdErr.EIO,
  EROFS: NbdErr.EPERM,
  EACCES: NbdErr.EPERM,
  EDQUOT: NbdErr.ENOSPC,
  EFBIG: NbdErr.ENOSPC,
};

/** Symbolic errno ('EROFS', …) → NBD error value; null → 0. Anything outside the NBD set → EIO. */
export function toNbdError(errno: string | null): number {
  if (errno === null) return NbdErr.OK;
  return ERRNO_MAP[errno] ?? NbdErr.EIO;
}

// ── Decoder messages ─────────────────────────────────────────────────────────────────────────
export type NbdPhase = 'client-flags' | 'options' | 'transmission';

export interface ClientFlagsMessage { kind: 'client-flags'; flags: number }
export interface OptionMessage { kind: 'option'; option: number; data: Buffer }
export interface RequestMessage {
  kind: 'request';
  /** command flags (u16) */
  flags: number;
  /** command type (u16) */
  type: number;
  /** 8 opaque bytes, echoed as they came */
  cookie: Buffer;
  /** u64 offset; values above 2^53 lose precision but stay far past any export size */
  offset: number;
  /** u32 length */
  length: number;
  /** exactly `length` bytes for NBD_CMD_WRITE; null for every other command */
  payload: Buffer | null;
}
export type NbdMessage = ClientFlagsMessage | OptionMessage | RequestMessage;

export interface NbdServerDecoderOptions {
  /** largest option payload (default MAX_OPTION_DATA) */
  maxOptionData?: number;
  /** largest WRITE payload (default MAX_PAYLOAD) */
  maxPayload?: number;
  /** where WRITE payloads are assembled (default: plain allocation; the engine passes its pool) */
  payloads?: PayloadSource;
}

function badFrame(message: string): DstError {
  return new DstError('DST_ERR_BAD_FRAME', message, { errno: 'EPROTO' });
}

/**
 * Server-side NBD stream decoder (fixed newstyle, compact requests only).
 *
 * phase 'client-flags': the next 4 bytes are the client flags; yields one message and moves
 *   itself to 'options'.
 * phase 'options': option requests (IHAVEOPT · option · length · data).
 * phase 'transmission': compact requests; WRITE carries its payload.
 * The owner sets `phase` between next() calls; it is never changed mid-message.
 * A malformed stream throws DstError DST_ERR_BAD_FRAME; the decoder is then unusable.
 */
export class NbdServerDecoder {
  phase: NbdPhase = 'client-flags';
  private readonly buf: StreamBuffer;
  private pending: RequestMessage | null = null;  // header parsed, payload still arriving
  private pendingOption: { option: number; length: number } | null = null;
  private readonly maxOptionData: number;
  private readonly maxPayload: number;

  constructor(opts: NbdServerDecoderOptions = {}) {
    this.maxOptionData = opts.maxOptionData ?? MAX_OPTION_DATA;
    this.maxPayload = opts.maxPayload ?? MAX_PAYLOAD;
    this.buf = new StreamBuffer(opts.payloads);
  }

  /** bytes buffered and not yet returned as messages */
  get buffered(): number { return this.buf.bytes + this.buf.destFilled; }

  feed(chunk: Buffer): void {
    this.buf.feed(chunk);
  }

  /**
   * Like feed(), for a chunk the caller overwrites once this call returns (a socket read into
   * one reused buffer). Nothing is kept pointing into `chunk`: a large WRITE whose payload is
   * not all here gets its buffer at once (so the rest can be read straight into it: readTarget),
   * and any other remainder is copied into decoder-owned memory.
   */
  feedTransient(chunk: Buffer): void {
    const buf = this.buf;
    if (this.phase !== 'transmission') {
      const at = buf.fillTransient(chunk);
      if (at < chunk.length) buf.keepCopy(chunk, at);
      return;
    }
    if (buf.dest !== null && buf.destFilled < buf.dest.length) {
      // a WRITE payload being assembled (nothing after it buffered): what follows its end starts the next request
      const at = buf.fillTransient(chunk);
      if (at < chunk.length) buf.keepMessages(chunk, at, this.locate, false);
      return;
    }
    if (buf.dest !== null || buf.bytes !== 0 || this.pending !== null) {
      buf.keepCopy(chunk, 0); // a header cut short, or requests not pulled yet
      return;
    }
    buf.keepMessages(chunk, 0, this.locate, true); // a request starts here, nothing else is buffered
  }

  /** keepMessages' view of the request at `at`: [payload start, payload length, end]. */
  private readonly locate = (chunk: Buffer, at: number): [number, number, number] | null => {
    if (chunk.length - at < REQUEST_HEADER_SIZE || chunk.readUInt32BE(at) !== NBD_REQUEST_MAGIC) return null;
    const length = chunk.readUInt16BE(at + 6) === Cmd.WRITE ? chunk.readUInt32BE(at + 24) : 0;
    if (length > this.maxPayload) return null;
    return [at + REQUEST_HEADER_SIZE, length, at + REQUEST_HEADER_SIZE + length];
  };

  /** Where the next socket read should land (see StreamBuffer.readTarget). */
  readTarget(scratch: Buffer): Buffer {
    return this.buf.readTarget(scratch);
  }

  next(): NbdMessage | null {
    switch (this.phase) {
      case 'client-flags': {
        if (this.buf.bytes < CLIENT_FLAGS_SIZE) return null;
        const flags = this.buf.take(CLIENT_FLAGS_SIZE).readUInt32BE(0);
        this.phase = 'options';
        return { kind: 'client-flags', flags };
      }
      case 'options': return this.nextOption();
      case 'transmission': return this.nextRequest();
    }
  }

  private nextOption(): OptionMessage | null {
    if (this.pendingOption === null) {
      if (this.buf.bytes < OPTION_HEADER_SIZE) return null;
      const h = this.buf.take(OPTION_HEADER_SIZE);
      const magic = h.readBigUInt64BE(0);
      if (magic !== NBD_IHAVEOPT) throw badFrame(`bad NBD option magic 0x${magic.toString(16)}`);
      const option = h.readUInt32BE(8);
      const length = h.readUInt32BE(12);
      if (length > this.maxOptionData) {
        throw badFrame(`NBD option ${optName(option)} carries ${length} bytes (limit ${this.maxOptionData})`);
      }
      this.pendingOption = { option, length };
    }
    const { option, length } = this.pendingOption;
    if (this.buf.bytes < length) return null;
    this.pendingOption = null;
    return { kind: 'option', option, data: Buffer.from(this.buf.take(length)) };
  }

  private nextRequest(): RequestMessage | null {
    if (this.pending === null) {
      if (this.buf.bytes < REQUEST_HEADER_SIZE) return null;
      // Parse the header where it lies when it is inside one chunk (the usual case).
      const [h, at] = this.buf.takeInPlace(REQUEST_HEADER_SIZE);
      const magic = h.readUInt32BE(at);
      if (magic !== NBD_REQUEST_MAGIC) {
        throw badFrame(magic === NBD_EXTENDED_REQUEST_MAGIC
          ? 'NBD extended request header without negotiated extended headers'
          : `bad NBD request magic 0x${magic.toString(16).padStart(8, '0')}`);
      }
      const cookie = Buffer.allocUnsafe(8); // own copy: the chunk may be a view the owner reuses
      h.copy(cookie, 0, at + 8, at + 16);
      const req: RequestMessage = {
        kind: 'request',
        flags: h.readUInt16BE(at + 4),
        type: h.readUInt16BE(at + 6),
        cookie,
        offset: h.readUInt32BE(at + 16) * 0x1_0000_0000 + h.readUInt32BE(at + 20),
        length: h.readUInt32BE(at + 24),
        payload: null,
      };
      if (req.type === Cmd.WRITE && req.length > this.maxPayload) {
        throw badFrame(`NBD write of ${req.length} bytes exceeds the maximum payload ${this.maxPayload}`);
      }
      this.pending = req;
    }
    const req = this.pending;
    if (req.type === Cmd.WRITE) {
      // the payload, or null while it is still arriving (then assembled in its own buffer)
      const payload = this.buf.payload(req.length);
      if (payload === null) return null;
      req.payload = payload;
    }
    this.pending = null;
    return req;
  }
}

// ── Option payload parsers (server side) ─────────────────────────────────────────────────────
export interface InfoRequest { name: string; infos: number[] }

/** NBD_OPT_INFO / NBD_OPT_GO payload: name length u32 · name · n u16 · n × info u16. Throws BAD_FRAME. */
export function parseInfoRequest(data: Buffer): InfoRequest {
  if (data.length < 6) throw badFrame(`NBD INFO/GO payload of ${data.length} bytes is too short`);
  const nameLen = data.readUInt32BE(0);
  if (nameLen > data.length - 6) throw badFrame(`NBD INFO/GO name length ${nameLen} exceeds the payload`);
  if (nameLen > MAX_STRING) throw badFrame(`NBD export name of ${nameLen} bytes is too long`);
  const name = data.toString('utf8', 4, 4 + nameLen);
  const count = data.readUInt16BE(4 + nameLen);
  if (data.length !== 6 + nameLen + 2 * count) {
    throw badFrame(`NBD INFO/GO payload is ${data.length} bytes, expected ${6 + nameLen + 2 * count}`);
  }
  const infos: number[] = [];
  for (let i = 0; i < count; i++) infos.push(data.readUInt16BE(6 + nameLen + 2 * i));
  return { name, infos };
}

export function encodeInfoRequest(name: string, infos: number[] = []): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(6 + n.length + 2 * infos.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(infos.length, 4 + n.length);
  infos.forEach((t, i) => b.writeUInt16BE(t, 6 + n.length + 2 * i));
  return b;
}

// ── Server encoders: handshake and options ───────────────────────────────────────────────────
export function encodeGreeting(handshakeFlags: number = HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES): Buffer {
  const b = Buffer.alloc(GREETING_SIZE);
  b.writeBigUInt64BE(NBD_MAGIC, 0);
  b.writeBigUInt64BE(NBD_IHAVEOPT, 8);
  b.writeUInt16BE(handshakeFlags, 16);
  return b;
}

export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(OPTION_REPLY_HEADER_SIZE + data.length);
  b.writeBigUInt64BE(NBD_OPTION_REPLY_MAGIC, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, OPTION_REPLY_HEADER_SIZE);
  return b;
}

export function encodeOptionAck(option: number): Buffer {
  return encodeOptionReply(option, Rep.ACK);
}

/** An NBD_REP_ERR_* reply with a UTF-8 message (truncated to MAX_STRING bytes). */
export function encodeOptionError(option: number, type: number, message = ''): Buffer {
  let m = Buffer.from(message, 'utf8');
  if (m.length > MAX_STRING) m = m.subarray(0, MAX_STRING);
  return encodeOptionReply(option, type, m);
}

/** NBD_REP_SERVER: name length u32 · name · optional description. */
export function encodeRepServer(option: number, name: string, description = ''): Buffer {
  const n = Buffer.from(name, 'utf8');
  const d = Buffer.from(description, 'utf8');
  const data = Buffer.alloc(4 + n.length + d.length);
  data.writeUInt32BE(n.length, 0);
  n.copy(data, 4);
  d.copy(data, 4 + n.length);
  return encodeOptionReply(option, Rep.SERVER, data);
}

/** NBD_REP_INFO / NBD_INFO_EXPORT: size u64 · transmission flags u16 (reply length 12). */
export function encodeInfoExport(option: number, size: number, txFlags: number): Buffer {
  const data = Buffer.alloc(12);
  data.writeUInt16BE(Info.EXPORT, 0);
  data.writeBigUInt64BE(BigInt(size), 2);
  data.writeUInt16BE(txFlags, 10);
  return encodeOptionReply(option, Rep.INFO, data);
}

/** NBD_REP_INFO / NBD_INFO_NAME: the canonical name. */
export function encodeInfoName(option: number, name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const data = Buffer.alloc(2 + n.length);
  data.writeUInt16BE(Info.NAME, 0);
  n.copy(data, 2);
  return encodeOptionReply(option, Rep.INFO, data);
}

/** NBD_REP_INFO / NBD_INFO_BLOCK_SIZE: minimum · preferred · maximum payload (reply length 14). */
export function encodeInfoBlockSize(option: number, minimum: number, preferred: number, maximum: number): Buffer {
  const data = Buffer.alloc(14);
  data.writeUInt16BE(Info.BLOCK_SIZE, 0);
  data.writeUInt32BE(minimum, 2);
  data.writeUInt32BE(preferred, 6);
  data.writeUInt32BE(maximum >>> 0, 10);
  return encodeOptionReply(option, Rep.INFO, data);
}

/** The NBD_OPT_EXPORT_NAME reply: size u64 · flags u16 · 124 zeroes unless NO_ZEROES was agreed. */
export function encodeExportNameReply(size: number, txFlags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(10 + (noZeroes ? 0 : EXPORT_NAME_PAD));
  b.writeBigUInt64BE(BigInt(size), 0);
  b.writeUInt16BE(txFlags, 8);
  return b;
}

// ── Server encoders: transmission replies ────────────────────────────────────────────────────
/** Simple reply header; a successful READ's data follows it on the wire. */
export function encodeSimpleReply(cookie: Buffer, error: number): Buffer {
  const b = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE); // every byte is written below
  b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error >>> 0, 4);
  cookie.copy(b, 8, 0, 8);
  return b;
}

export function encodeStructuredHeader(cookie: Buffer, flags: number, type: number, length: number): Buffer {
  const b = Buffer.alloc(STRUCTURED_HEADER_SIZE);
  writeStructuredHeader(b, cookie, flags, type, length);
  return b;
}

function writeStructuredHeader(b: Buffer, cookie: Buffer, flags: number, type: number, length: number): void {
  b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  cookie.copy(b, 8, 0, 8);
  b.writeUInt32BE(length >>> 0, 16);
}

/**
 * NBD_REPLY_TYPE_OFFSET_DATA chunk: [header (20) + offset (8), ...data] for writev.
 * `data` may be several buffers (a split read, in order); together ≥ 1 byte.
 */
export function encodeOffsetDataChunk(cookie: Buffer, offset: number, data: Buffer | readonly Buffer[], done: boolean): Buffer[] {
  const h = Buffer.allocUnsafe(STRUCTURED_HEADER_SIZE + 8); // every byte is written below
  let out: Buffer[];
  let total: number;
  if (Buffer.isBuffer(data)) {
    total = data.length;
    out = [h, data];
  } else {
    total = 0;
    out = [h];
    for (const p of data) {
      total += p.length;
      out.push(p);
    }
  }
  if (total === 0) throw new DstError('DST_ERR_INTERNAL', 'NBD OFFSET_DATA chunk must carry at least one byte');
  writeStructuredHeader(h, cookie, done ? ReplyFlag.DONE : 0, ReplyType.OFFSET_DATA, 8 + total);
  h.writeUInt32BE(Math.floor(offset / 0x1_0000_0000), STRUCTURED_HEADER_SIZE);
  h.writeUInt32BE(offset >>> 0, STRUCTURED_HEADER_SIZE + 4);
  return out;
}

/** NBD_REPLY_TYPE_NONE with DONE: ends a structured reply. */
export function encodeNoneDone(cookie: Buffer): Buffer {
  return encodeStructuredHeader(cookie, ReplyFlag.DONE, ReplyType.NONE, 0);
}

/** NBD_REPLY_TYPE_ERROR chunk: error u32 · message length u16 · message. */
export function encodeErrorChunk(cookie: Buffer, error: number, message = '', done = true): Buffer {
  let m = Buffer.from(message, 'utf8');
  if (m.length > MAX_STRING) m = m.subarray(0, MAX_STRING);
  const b = Buffer.alloc(STRUCTURED_HEADER_SIZE + 6 + m.length);
  writeStructuredHeader(b, cookie, done ? ReplyFlag.DONE : 0, ReplyType.ERROR, 6 + m.length);
  b.writeUInt32BE(error >>> 0, STRUCTURED_HEADER_SIZE);
  b.writeUInt16BE(m.length, STRUCTURED_HEADER_SIZE + 4);
  m.copy(b, STRUCTURED_HEADER_SIZE + 6);
  return b;
}

// ── Client-side codec (tests, tools): the mirror images ──────────────────────────────────────
export function encodeClientFlags(flags: number): Buffer {
  const b = Buffer.alloc(CLIENT_FLAGS_SIZE);
  b.writeUInt32BE(flags >>> 0, 0);
  return b;
}

export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(OPTION_HEADER_SIZE + data.length);
  b.writeBigUInt64BE(NBD_IHAVEOPT, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(data.length, 12);
  data.copy(b, OPTION_HEADER_SIZE);
  return b;
}

export interface RequestFields {
  flags?: number;
  type: number;
  cookie: Buffer | bigint;
  offset: number | bigint;
  length: number;
  payload?: Buffer | null;
}

/** A compact request header, followed by the payload if one is given. */
export function encodeRequest(r: RequestFields): Buffer {
  const payload = r.payload ?? null;
  const b = Buffer.alloc(REQUEST_HEADER_SIZE + (payload?.length ?? 0));
  b.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  b.writeUInt16BE(r.flags ?? 0, 4);
  b.writeUInt16BE(r.type, 6);
  if (typeof r.cookie === 'bigint') b.writeBigUInt64BE(r.cookie, 8);
  else r.cookie.copy(b, 8, 0, 8);
  b.writeBigUInt64BE(BigInt(r.offset), 16);
  b.writeUInt32BE(r.length >>> 0, 24);
  payload?.copy(b, REQUEST_HEADER_SIZE);
  return b;
}

export interface Greeting { handshakeFlags: number }
export function decodeGreeting(b: Buffer): Greeting {
  if (b.length < GREETING_SIZE) throw badFrame('short NBD greeting');
  if (b.readBigUInt64BE(0) !== NBD_MAGIC || b.readBigUInt64BE(8) !== NBD_IHAVEOPT) throw badFrame('bad NBD greeting magic');
  return { handshakeFlags: b.readUInt16BE(16) };
}

export interface OptionReplyHeader { option: number; type: number; length: number }
export function decodeOptionReplyHeader(b: Buffer): OptionReplyHeader {
  if (b.length < OPTION_REPLY_HEADER_SIZE) throw badFrame('short NBD option reply');
  if (b.readBigUInt64BE(0) !== NBD_OPTION_REPLY_MAGIC) throw badFrame('bad NBD option reply magic');
  return { option: b.readUInt32BE(8), type: b.readUInt32BE(12), length: b.readUInt32BE(16) };
}

export interface SimpleReply { error: number; cookie: Buffer }
export function decodeSimpleReply(b: Buffer): SimpleReply {
  if (b.length < SIMPLE_REPLY_SIZE) throw badFrame('short NBD simple reply');
  if (b.readUInt32BE(0) !== NBD_SIMPLE_REPLY_MAGIC) throw badFrame('bad NBD simple reply magic');
  return { error: b.readUInt32BE(4), cookie: Buffer.from(b.subarray(8, 16)) };
}

export interface StructuredHeader { flags: number; type: number; cookie: Buffer; length: number }
export function decodeStructuredHeader(b: Buffer): StructuredHeader {
  if (b.length < STRUCTURED_HEADER_SIZE) throw badFrame('short NBD structured reply');
  if (b.readUInt32BE(0) !== NBD_STRUCTURED_REPLY_MAGIC) throw badFrame('bad NBD structured reply magic');
  return { flags: b.readUInt16BE(4), type: b.readUInt16BE(6), cookie: Buffer.from(b.subarray(8, 16)), length: b.readUInt32BE(16) };
}
