// NBD handshake and option negotiation codec: pure, no I/O. The server's greeting, option
// payload parsers and option replies, and their client-side mirror images (tests, tools).
import {
  CLIENT_FLAGS_SIZE, EXPORT_NAME_PAD, GREETING_SIZE, HandshakeFlag, Info, MAX_STRING, NBD_IHAVEOPT, NBD_MAGIC,
  NBD_OPTION_REPLY_MAGIC, OPTION_HEADER_SIZE, OPTION_REPLY_HEADER_SIZE, Rep, badFrame,
} from './nbd.js';

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

// ── Meta contexts ───────────────────────────────────────────────────────────────────────────
/** The one meta context this server offers: which parts of the export are holes or read zeroes. */
export const BASE_ALLOCATION = 'base:allocation';

export interface MetaContextRequest { name: string; queries: string[] }

/**
 * NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT payload: name length u32 · name ·
 * query count u32 · count × (query length u32 · query). Throws BAD_FRAME.
 */
export function parseMetaContextRequest(data: Buffer): MetaContextRequest {
  let at = 0;
  const u32 = (what: string): number => {
    if (data.length - at < 4) throw badFrame(`NBD meta context payload ends before the ${what}`);
    at += 4;
    return data.readUInt32BE(at - 4);
  };
  const string = (what: string): string => {
    const n = u32(`${what} length`);
    if (n > MAX_STRING) throw badFrame(`NBD meta context ${what} of ${n} bytes is too long`);
    if (n > data.length - at) throw badFrame(`NBD meta context ${what} length ${n} exceeds the payload`);
    at += n;
    return data.toString('utf8', at - n, at);
  };
  const name = string('export name');
  const count = u32('query count');
  // each query takes at least its 4-byte length: a bigger count cannot fit
  if (count > (data.length - at) / 4) throw badFrame(`NBD meta context query count ${count} exceeds the payload`);
  const queries: string[] = [];
  for (let i = 0; i < count; i++) queries.push(string(`query ${i}`));
  if (at !== data.length) throw badFrame(`NBD meta context payload has ${data.length - at} bytes after its queries`);
  return { name, queries };
}

export function encodeMetaContextRequest(name: string, queries: readonly string[]): Buffer {
  const n = Buffer.from(name, 'utf8');
  const qs = queries.map((q) => Buffer.from(q, 'utf8'));
  const b = Buffer.alloc(8 + n.length + qs.reduce((t, q) => t + 4 + q.length, 0));
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  let at = b.writeUInt32BE(qs.length, 4 + n.length);
  for (const q of qs) {
    at = b.writeUInt32BE(q.length, at);
    at += q.copy(b, at);
  }
  return b;
}

/** NBD_REP_META_CONTEXT: context id u32 · context name. */
export function encodeRepMetaContext(option: number, id: number, name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const data = Buffer.alloc(4 + n.length);
  data.writeUInt32BE(id >>> 0, 0);
  n.copy(data, 4);
  return encodeOptionReply(option, Rep.META_CONTEXT, data);
}

/** The data of an NBD_REP_META_CONTEXT reply (client side). */
export function decodeRepMetaContext(data: Buffer): { id: number; name: string } {
  if (data.length < 4) throw badFrame(`NBD_REP_META_CONTEXT of ${data.length} bytes is too short`);
  if (data.length > 4 + MAX_STRING) throw badFrame(`NBD_REP_META_CONTEXT of ${data.length} bytes is too long`);
  return { id: data.readUInt32BE(0), name: data.toString('utf8', 4) };
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
// ── Client side: the mirror images ───────────────────────────────────────────────────────────
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
