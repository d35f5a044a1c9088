// The NBD client's side of the codec (the export's NBD backend, issue 17): pure, no I/O. Option
// request headers a client sends, the INFO and EXPORT_NAME replies it reads, and a streaming decoder of
// transmission replies — simple and structured — that gives the same replies however the input is
// split. The server-side codecs (nbd-options.ts, nbd-replies.ts) already hold the shared pieces
// (encodeOption, encodeInfoRequest, encodeMetaContextRequest, decodeRepMetaContext, decodeGreeting,
// decodeOptionReplyHeader); this module adds what
// only a client needs.
import {
  Info, MAX_PAYLOAD, NBD_REQUEST_MAGIC, NBD_SIMPLE_REPLY_MAGIC, NBD_STRUCTURED_REPLY_MAGIC, REQUEST_HEADER_SIZE,
  ReplyFlag, ReplyType, SIMPLE_REPLY_SIZE, STRUCTURED_HEADER_SIZE, badFrame, nbdErrName,
} from './nbd.js';

/** A transmission request header (compact form) with the client's u32 cookie; a WRITE's payload follows it on the wire. */
export function encodeRequestHeader(cmd: number, flags: number, cookie: number, offset: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(REQUEST_HEADER_SIZE); // every byte is written below
  h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(cmd, 6);
  h.writeUInt32BE(0, 8);
  h.writeUInt32BE(cookie, 12);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeUInt32BE(length, 24);
  return h;
}

export type InfoReply =
  | { type: typeof Info.EXPORT; size: number; flags: number }
  | { type: typeof Info.BLOCK_SIZE; minimum: number; preferred: number; maximum: number }
  | { type: 'other'; info: number };

/** NBD_REP_INFO data (EXPORT and BLOCK_SIZE are checked; other infos are ignored by the caller). */
export function decodeInfoReply(data: Buffer): InfoReply {
  if (data.length < 2) throw badFrame(`NBD_REP_INFO of ${data.length} bytes`);
  const info = data.readUInt16BE(0);
  if (info === Info.EXPORT) {
    if (data.length !== 12) throw badFrame(`NBD_INFO_EXPORT of ${data.length} bytes, not 12`);
    return { type: Info.EXPORT, size: u64(data, 2, 'export size'), flags: data.readUInt16BE(10) };
  }
  if (info === Info.BLOCK_SIZE) {
    if (data.length !== 14) throw badFrame(`NBD_INFO_BLOCK_SIZE of ${data.length} bytes, not 14`);
    return { type: Info.BLOCK_SIZE, minimum: data.readUInt32BE(2), preferred: data.readUInt32BE(6), maximum: data.readUInt32BE(10) };
  }
  return { type: 'other', info };
}

/** The reply to NBD_OPT_EXPORT_NAME: size u64 · flags u16 (the 124 zeroes, if any, are skipped by the caller). */
export function decodeExportNameReply(b: Buffer): { size: number; flags: number } {
  if (b.length < 10) throw badFrame(`NBD_OPT_EXPORT_NAME reply of ${b.length} bytes`);
  return { size: u64(b, 0, 'export size'), flags: b.readUInt16BE(8) };
}

function u64(b: Buffer, at: number, what: string): number {
  const v = b.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw badFrame(`NBD ${what} ${v} is too large`);
  return Number(v);
}

// ── Transmission replies ─────────────────────────────────────────────────────────────────────

/**
 * One reply piece: a simple reply (with a READ's data: null when there is none, or when it was
 * placed in the READ's buffer), one structured chunk, or an OFFSET_DATA chunk whose data the
 * decoder placed in the READ's buffer.
 */
export type ReplyPiece =
  | { kind: 'simple'; cookie: number; error: number; data: Buffer | null }
  | { kind: 'chunk'; cookie: number; done: boolean; type: number; payload: Buffer }
  | { kind: 'placed'; cookie: number; done: boolean; offset: number; length: number };

/** The request a cookie belongs to, as the decoder needs it: a simple READ reply carries `length` bytes. */
export interface CookieLookup {
  /** bytes of data that follow a successful simple reply to this cookie (0 unless a READ), null: unknown cookie */
  simpleDataLength(cookie: number): number | null;
  /**
   * Where a READ's data goes (its buffer, and the export offset of the buffer's first byte): the
   * decoder writes it there straight from the socket, without collecting and copying it. Absent
   * or null: the data comes as a piece.
   */
  readTarget?(cookie: number): { buf: Buffer; offset: number } | null;
}

/** Largest structured chunk accepted: a whole maximum READ plus its offset, or an error message. */
export const MAX_CHUNK = MAX_PAYLOAD + 8;

/**
 * Streaming decoder: bytes in (split anywhere), reply pieces out, in order. Cookies are the
 * client's own u32 numbers (the high half is zero); anything else is a malformed stream (throws
 * BAD_FRAME; the caller drops the connection). Holds at most one piece's bytes.
 */
export class ReplyDecoder {
  private head = Buffer.alloc(STRUCTURED_HEADER_SIZE);
  private headUsed = 0;
  /** the piece whose body is being collected */
  private body: Buffer | null = null;
  private bodyUsed = 0;
  private pending: ((body: Buffer) => ReplyPiece | null) | null = null;

  constructor(private readonly lookup: CookieLookup) {}

  /** Decode `chunk`; returns the pieces it completes. */
  push(chunk: Buffer): ReplyPiece[] {
    const out: ReplyPiece[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.body !== null) {
        const n = Math.min(this.body.length - this.bodyUsed, chunk.length - at);
        chunk.copy(this.body, this.bodyUsed, at, at + n);
        this.bodyUsed += n;
        at += n;
        if (this.bodyUsed === this.body.length) {
          const piece = this.finishBody();
          if (piece !== null) out.push(piece);
        }
        continue;
      }
      const need = this.headerSize();
      const n = Math.min(need - this.headUsed, chunk.length - at);
      chunk.copy(this.head, this.headUsed, at, at + n);
      this.headUsed += n;
      at += n;
      if (this.headUsed === need) {
        const piece = this.onHeader();
        if (piece !== null) out.push(piece);
      }
    }
    return out;
  }

  /**
   * Where the next bytes of the stream belong, so that a reader can put them there itself instead
   * of pushing a copy: the rest of the body being collected (a READ's buffer, or a chunk's), when
   * at least `min` bytes of it remain; else null (push the bytes). Report them with `landed`.
   */
  landingZone(min: number): Buffer | null {
    const body = this.body;
    if (body === null || body.length - this.bodyUsed < Math.max(1, min)) return null;
    return body.subarray(this.bodyUsed);
  }

  /** `n` bytes were written at the start of the last `landingZone`; returns the pieces they complete. */
  landed(n: number): ReplyPiece[] {
    const body = this.body;
    if (body === null || n > body.length - this.bodyUsed) throw new RangeError(`${n} bytes landed beyond the body being collected`);
    this.bodyUsed += n;
    if (this.bodyUsed < body.length) return [];
    const piece = this.finishBody();
    return piece === null ? [] : [piece];
  }

  /** Bytes of a reply still expected (0: the stream is between replies). */
  get partial(): number {
    return this.headUsed + this.bodyUsed;
  }

  /** The header size is known once the magic is in: 16 (simple) or 20 (structured). */
  private headerSize(): number {
    if (this.headUsed < 4) return 4;
    const magic = this.head.readUInt32BE(0);
    if (magic === NBD_SIMPLE_REPLY_MAGIC) return SIMPLE_REPLY_SIZE;
    if (magic === NBD_STRUCTURED_REPLY_MAGIC) return STRUCTURED_HEADER_SIZE;
    throw badFrame(`bad NBD reply magic 0x${magic.toString(16)}`);
  }

  private cookie(): number {
    const hi = this.head.readUInt32BE(8);
    const lo = this.head.readUInt32BE(12);
    if (hi !== 0 || this.lookup.simpleDataLength(lo) === null) {
      throw badFrame(`NBD reply for unknown cookie 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`);
    }
    return lo;
  }

  private onHeader(): ReplyPiece | null {
    if (this.headUsed === 4) return null; // the magic alone: now the rest of the header
    const cookie = this.cookie();
    const target = this.lookup.readTarget?.(cookie) ?? null;
    if (this.head.readUInt32BE(0) === NBD_SIMPLE_REPLY_MAGIC) {
      const error = this.head.readUInt32BE(4);
      const length = error === 0 ? this.lookup.simpleDataLength(cookie)! : 0;
      if (length > 0 && target !== null && length <= target.buf.length) {
        return this.expect(length, () => ({ kind: 'simple', cookie, error, data: null }), target.buf.subarray(0, length));
      }
      return this.expect(length, (data) => ({ kind: 'simple', cookie, error, data: length === 0 ? null : data }));
    }
    const flags = this.head.readUInt16BE(4);
    const type = this.head.readUInt16BE(6);
    const length = this.head.readUInt32BE(16);
    if (length > MAX_CHUNK) throw badFrame(`NBD structured chunk of ${length} bytes (at most ${MAX_CHUNK})`);
    const done = (flags & ReplyFlag.DONE) !== 0;
    if (type === ReplyType.OFFSET_DATA && length > 8 && target !== null) {
      // the offset first, then the data straight into the READ's buffer where it belongs
      return this.expect(8, (head) => {
        const offset = u64(head, 0, 'OFFSET_DATA offset');
        const n = length - 8;
        const at = offset - target.offset;
        if (at < 0 || at + n > target.buf.length) {
          throw badFrame(`NBD OFFSET_DATA [${offset}, +${n}) outside the read [${target.offset}, +${target.buf.length})`);
        }
        return this.expect(n, () => ({ kind: 'placed', cookie, done, offset, length: n }), target.buf.subarray(at, at + n));
      });
    }
    return this.expect(length, (payload) => ({ kind: 'chunk', cookie, done, type, payload }));
  }

  /** Collect `length` bytes (into `into` when given, else a new buffer), then make the piece (or expect more). */
  private expect(length: number, make: (body: Buffer) => ReplyPiece | null, into?: Buffer): ReplyPiece | null {
    this.headUsed = 0;
    if (length === 0) return make(Buffer.alloc(0));
    this.body = into ?? Buffer.allocUnsafe(length); // filled completely before it is handed out
    this.bodyUsed = 0;
    this.pending = make;
    return null;
  }

  private finishBody(): ReplyPiece | null {
    const make = this.pending!;
    const body = this.body!;
    this.body = null;
    this.bodyUsed = 0;
    this.pending = null;
    return make(body); // may expect more: an OFFSET_DATA's data after its offset
  }
}

// ── Structured chunk payloads ────────────────────────────────────────────────────────────────

export type ChunkContent =
  | { type: 'none' }
  | { type: 'data'; offset: number; data: Buffer }
  | { type: 'hole'; offset: number; length: number }
  | { type: 'status'; contextId: number; descriptors: Buffer }
  | { type: 'error'; errno: string; message: string; offset: number | null };

/** The content of one structured chunk, checked (BAD_FRAME when malformed or of an unknown type). */
export function decodeChunk(type: number, p: Buffer): ChunkContent {
  switch (type) {
    case ReplyType.NONE:
      if (p.length !== 0) throw badFrame(`NBD_REPLY_TYPE_NONE with ${p.length} bytes`);
      return { type: 'none' };
    case ReplyType.OFFSET_DATA:
      if (p.length < 9) throw badFrame(`NBD_REPLY_TYPE_OFFSET_DATA of ${p.length} bytes`);
      return { type: 'data', offset: u64(p, 0, 'data offset'), data: p.subarray(8) };
    case ReplyType.OFFSET_HOLE:
      if (p.length !== 12) throw badFrame(`NBD_REPLY_TYPE_OFFSET_HOLE of ${p.length} bytes, not 12`);
      return { type: 'hole', offset: u64(p, 0, 'hole offset'), length: p.readUInt32BE(8) };
    case ReplyType.BLOCK_STATUS:
      if (p.length < 12 || (p.length - 4) % 8 !== 0) throw badFrame(`NBD_REPLY_TYPE_BLOCK_STATUS of ${p.length} bytes`);
      return { type: 'status', contextId: p.readUInt32BE(0), descriptors: p.subarray(4) };
    case ReplyType.ERROR:
    case ReplyType.ERROR_OFFSET: {
      if (p.length < 6) throw badFrame(`NBD error chunk of ${p.length} bytes`);
      const error = p.readUInt32BE(0);
      const mlen = p.readUInt16BE(4);
      const tail = type === ReplyType.ERROR_OFFSET ? 8 : 0;
      if (p.length !== 6 + mlen + tail) throw badFrame(`NBD error chunk of ${p.length} bytes with a ${mlen}-byte message`);
      if (error === 0) throw badFrame('NBD error chunk with error 0');
      return {
        type: 'error', errno: nbdErrno(error), message: p.toString('utf8', 6, 6 + mlen),
        offset: tail === 0 ? null : u64(p, 6 + mlen, 'error offset'),
      };
    }
    default:
      throw badFrame(`unknown NBD structured reply type ${type}`);
  }
}

/** The NBD error value as a symbolic errno; EIO for values outside NBD's set. */
export function nbdErrno(error: number): string {
  const name = nbdErrName(error);
  return name === `E${error}` ? 'EIO' : name;
}
