// NBD transmission codec: pure, no I/O. The server's simple and structured replies, and the
// client-side mirror images (requests, reply headers) used by tests and tools.
import { DstError } from '../util/errors.js';
import { EXTENT_SIZE, type ExtentDescriptor } from './thin.js';
import {
  MAX_STRING, NBD_REQUEST_MAGIC, NBD_SIMPLE_REPLY_MAGIC, NBD_STRUCTURED_REPLY_MAGIC, REQUEST_HEADER_SIZE, ReplyFlag, ReplyType,
  SIMPLE_REPLY_SIZE, STRUCTURED_HEADER_SIZE, badFrame,
} from './nbd.js';

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

/**
 * NBD_REPLY_TYPE_BLOCK_STATUS chunk with DONE: [header (20) + context id (4), descriptors] for
 * writev; the descriptors (protocol/thin.ts) are already in base:allocation's wire form.
 */
export function encodeBlockStatusChunk(cookie: Buffer, contextId: number, descriptors: Buffer): Buffer[] {
  const h = Buffer.allocUnsafe(STRUCTURED_HEADER_SIZE + 4); // every byte is written below
  writeStructuredHeader(h, cookie, ReplyFlag.DONE, ReplyType.BLOCK_STATUS, 4 + descriptors.length);
  h.writeUInt32BE(contextId >>> 0, STRUCTURED_HEADER_SIZE);
  return [h, descriptors];
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
// ── Client side: the mirror images ───────────────────────────────────────────────────────────
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


/** A BLOCK_STATUS chunk's payload (client side): context id u32 · whole 8-byte descriptors. */
export function decodeBlockStatus(payload: Buffer): { contextId: number; extents: ExtentDescriptor[] } {
  if (payload.length < 4 || (payload.length - 4) % EXTENT_SIZE !== 0) {
    throw badFrame(`NBD block status payload of ${payload.length} bytes is not a context id and whole descriptors`);
  }
  const extents: ExtentDescriptor[] = [];
  for (let at = 4; at < payload.length; at += EXTENT_SIZE) extents.push({ length: payload.readUInt32BE(at), flags: payload.readUInt32BE(at + 4) });
  return { contextId: payload.readUInt32BE(0), extents };
}
