// Generic-netlink framing for the control socket: nlmsghdr, genlmsghdr, attributes (TLV),
// NLMSG_ERROR with extended ack. Pure codec, no I/O.
//
// Conventions (reference/style.md §4):
//  - parsers take a Buffer named r and return ParseResult<X> = { x, consumed }; they throw
//    DstError('DST_ERR_BAD_FRAME', ...) naming what is wrong, never a bare Error;
//  - formatters return a fresh Buffer and never mutate their input;
//  - every netlink field is in HOST byte order (that is what netlink means; our peer is always
//    on the same host because the control channel is a unix socket). The host order is made
//    explicit here (HOST_ENDIANNESS) and every read/write goes through the netlink package's
//    host-order helpers, so encoder and decoder always agree.
//
// nlmsghdr (16 bytes):  len u32 | type u16 | flags u16 | seq u32 | pid u32
// genlmsghdr (4 bytes): cmd u8 | version u8 (=1) | reserved u16 (=0)
// nlattr (4 bytes + payload, padded to 4): len u16 (header + payload, no padding) | type u16
//   type bit 15 = NLA_F_NESTED (payload is an attribute stream), bit 14 = NLA_F_NET_BYTEORDER
//   (never used by dst; rejected).
import { endianness } from 'node:os';
import {
  align as nlAlign,
  formatGenlHeader as nlFormatGenlHeader,
  formatHeader as nlFormatHeader,
  padding as nlPadding,
  parseGenlHeader as nlParseGenlHeader,
  parseHeader as nlParseHeader,
  readS32,
  readU16,
  writeS32,
  writeU16,
} from 'netlink/dist/structs.js';
import { DstError } from '../util/errors.js';

/** Byte order of every netlink integer on this host ('LE' on every host we run on). */
export const HOST_ENDIANNESS: 'LE' | 'BE' = endianness();

// ---- constants (linux/netlink.h) ----
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
/** Message types below this are netlink control messages; family ids start here. */
export const NLMSG_MIN_TYPE = 0x10;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH; // 0x300
/** In an NLMSG_ERROR: the echoed request was capped to its header. */
export const NLM_F_CAPPED = 0x100;
/** In an NLMSG_ERROR: extended-ack TLVs follow the echoed request. */
export const NLM_F_ACK_TLVS = 0x200;

/** Extended-ack attribute: human readable message (NUL-terminated string). */
export const NLMSGERR_ATTR_MSG = 1;
/** Extended-ack attribute: offset of the offending attribute in the request (u32; unused by dst). */
export const NLMSGERR_ATTR_OFFS = 2;
/**
 * Extended-ack attribute: the "cookie". dst puts its stable error code here, as a NUL-terminated
 * ASCII string such as "DST_ERR_NOT_FOUND", so the client rebuilds the same DstError.
 */
export const NLMSGERR_ATTR_COOKIE = 3;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = 0x3fff;

export const NLMSG_HDRLEN = 16;
export const GENL_HDRLEN = 4;
export const NLA_HDRLEN = 4;
/** Smallest message we accept on the control socket: nlmsghdr + genlmsghdr (or + error int). */
export const NLMSG_MIN_LEN = NLMSG_HDRLEN + GENL_HDRLEN;
/** nla_len is a u16 and includes the 4-byte header. */
export const NLA_MAX_LEN = 0xffff;
export const GENL_VERSION = 1;

export type ParseResult<T> = { x: T; consumed: number };

// ---- alignment: the one place ----
/** Bytes of padding after `n` bytes to reach a 4-byte boundary. */
export const padding = (n: number): number => nlPadding(n);
/** `n` rounded up to a 4-byte boundary. */
export const align = (n: number): number => nlAlign(n);

function badFrame(msg: string): DstError {
  return new DstError('DST_ERR_BAD_FRAME', msg, { errno: 'EINVAL' });
}

// ---- nlmsghdr ----
export interface NlMsgHeader {
  len: number;
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

export function parseNlMsgHeader(r: Buffer): ParseResult<NlMsgHeader> {
  if (r.length < NLMSG_HDRLEN) throw badFrame(`netlink header truncated: ${r.length} of ${NLMSG_HDRLEN} bytes`);
  const h = nlParseHeader(r).x;
  return { x: { len: h.length, type: h.type, flags: h.flags, seq: h.seq, pid: h.port }, consumed: NLMSG_HDRLEN };
}

export function formatNlMsgHeader(h: NlMsgHeader): Buffer {
  checkUint(h.len, 0xffffffff, 'nlmsg_len');
  checkUint(h.type, 0xffff, 'nlmsg_type');
  checkUint(h.flags, 0xffff, 'nlmsg_flags');
  checkUint(h.seq, 0xffffffff, 'nlmsg_seq');
  checkUint(h.pid, 0xffffffff, 'nlmsg_pid');
  return nlFormatHeader({ length: h.len, type: h.type, flags: h.flags, seq: h.seq, port: h.pid });
}

function checkUint(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new DstError('DST_ERR_INVALID', `${what} out of range: ${v}`, { errno: 'EINVAL' });
}

// ---- genlmsghdr ----
export interface GenlHeader {
  cmd: number;
  version: number;
  reserved: number;
}

export function parseGenlHeader(r: Buffer): ParseResult<GenlHeader> {
  if (r.length < GENL_HDRLEN) throw badFrame(`generic netlink header truncated: ${r.length} of ${GENL_HDRLEN} bytes`);
  const g = nlParseGenlHeader(r).x;
  return { x: { cmd: g.cmd, version: g.version, reserved: g.reserved ?? 0 }, consumed: GENL_HDRLEN };
}

export function formatGenlHeader(g: { cmd: number; version?: number }): Buffer {
  checkUint(g.cmd, 0xff, 'genl cmd');
  return nlFormatGenlHeader({ cmd: g.cmd, version: g.version ?? GENL_VERSION, reserved: 0 });
}

// ---- attributes ----
export interface Attr {
  /** attribute type without flag bits */
  type: number;
  nested: boolean;
  /** payload, without header and padding (a view into the parsed buffer) */
  data: Buffer;
}

/** One attribute: header + payload + padding to 4 bytes. */
export function formatAttr(type: number, data: Buffer, nested = false): Buffer {
  if (!Number.isInteger(type) || type < 0 || type > NLA_TYPE_MASK) throw new DstError('DST_ERR_INVALID', `attribute type out of range: ${type}`, { errno: 'EINVAL' });
  const len = NLA_HDRLEN + data.length;
  if (len > NLA_MAX_LEN) throw new DstError('DST_ERR_INVALID', `attribute ${type} too long: ${len} bytes (max ${NLA_MAX_LEN})`, { errno: 'EMSGSIZE' });
  const out = Buffer.alloc(align(len));
  writeU16.call(out, len, 0);
  writeU16.call(out, type | (nested ? NLA_F_NESTED : 0), 2);
  data.copy(out, NLA_HDRLEN);
  return out;
}

/** Parse one attribute at the start of r. consumed includes the padding (clamped to r). */
export function parseAttr(r: Buffer, where = 'attributes'): ParseResult<Attr> {
  if (r.length < NLA_HDRLEN) throw badFrame(`${where}: attribute header truncated (${r.length} bytes left)`);
  const len = readU16.call(r, 0);
  const rawType = readU16.call(r, 2);
  const type = rawType & NLA_TYPE_MASK;
  if (len < NLA_HDRLEN) throw badFrame(`${where}: attribute ${type} has nla_len ${len} < ${NLA_HDRLEN}`);
  if (len > r.length) throw badFrame(`${where}: attribute ${type} runs past its message (nla_len ${len}, ${r.length} bytes left)`);
  if (rawType & NLA_F_NET_BYTEORDER) throw badFrame(`${where}: attribute ${type} has NLA_F_NET_BYTEORDER set`);
  return {
    x: { type, nested: (rawType & NLA_F_NESTED) !== 0, data: r.subarray(NLA_HDRLEN, len) },
    consumed: Math.min(align(len), r.length),
  };
}

/** Parse a whole attribute stream (a message payload or a nest). */
export function parseAttrs(r: Buffer, where = 'attributes'): Attr[] {
  const out: Attr[] = [];
  let off = 0;
  while (off < r.length) {
    const { x, consumed } = parseAttr(r.subarray(off), where);
    out.push(x);
    off += consumed;
  }
  return out;
}

// ---- whole messages ----
export interface NlMessage {
  header: NlMsgHeader;
  /** everything after the nlmsghdr, up to nlmsg_len */
  payload: Buffer;
}

/**
 * Build one message. nlmsg_len is computed; the payload is padded so every message we write is
 * 4-byte aligned (the framer steps by nlmsg_len exactly).
 */
export function formatMessage(m: { type: number; flags: number; seq: number; pid?: number; payload: Buffer | Buffer[] }): Buffer {
  const parts = Array.isArray(m.payload) ? m.payload : [m.payload];
  let plen = 0;
  for (const p of parts) plen += p.length;
  const pad = padding(plen);
  const len = NLMSG_HDRLEN + plen + pad;
  const header = formatNlMsgHeader({ len, type: m.type, flags: m.flags, seq: m.seq, pid: m.pid ?? 0 });
  return Buffer.concat([header, ...parts, Buffer.alloc(pad)], len);
}

/** Parse one complete message at the start of r. */
export function parseMessage(r: Buffer): ParseResult<NlMessage> {
  const { x: header } = parseNlMsgHeader(r);
  if (header.len < NLMSG_HDRLEN) throw badFrame(`nlmsg_len ${header.len} is shorter than the ${NLMSG_HDRLEN}-byte header`);
  if (header.len > r.length) throw badFrame(`nlmsg_len ${header.len} runs past the ${r.length} bytes received`);
  return { x: { header, payload: r.subarray(NLMSG_HDRLEN, header.len) }, consumed: header.len };
}

export interface GenlMessage {
  header: NlMsgHeader;
  genl: GenlHeader;
  /** the attribute stream after the genl header */
  attrs: Buffer;
}

export function formatGenlMessage(m: { type: number; flags: number; seq: number; pid?: number; cmd: number; attrs: Buffer | Buffer[] }): Buffer {
  const attrs = Array.isArray(m.attrs) ? m.attrs : [m.attrs];
  return formatMessage({ type: m.type, flags: m.flags, seq: m.seq, pid: m.pid ?? 0, payload: [formatGenlHeader({ cmd: m.cmd }), ...attrs] });
}

/** Split a message's payload into genl header and attribute stream. */
export function parseGenlPayload(header: NlMsgHeader, payload: Buffer): GenlMessage {
  const { x: genl, consumed } = parseGenlHeader(payload);
  return { header, genl, attrs: payload.subarray(consumed) };
}

// ---- NLMSG_DONE ----
/** NLMSG_DONE ends a dump; its payload is an int (0), as the kernel sends it. */
export function formatDone(m: { type?: number; seq: number; pid?: number }): Buffer {
  const p = Buffer.alloc(4);
  writeS32.call(p, 0, 0);
  return formatMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: m.seq, pid: m.pid ?? 0, payload: p });
}

// ---- NLMSG_ERROR with extended ack ----
export interface NlError {
  /** negative errno, 0 = ack */
  error: number;
  /** the request's header, echoed */
  request: NlMsgHeader;
  /** NLMSGERR_ATTR_MSG */
  message: string | null;
  /** NLMSGERR_ATTR_COOKIE: the DST_ERR_* code */
  code: string | null;
}

function putCString(s: string): Buffer {
  if (s.includes('\0')) throw new DstError('DST_ERR_INVALID', `string contains a NUL character: ${JSON.stringify(s.slice(0, 40))}`, { errno: 'EINVAL' });
  const b = Buffer.alloc(Buffer.byteLength(s) + 1);
  b.write(s, 0);
  return b;
}

/**
 * NLMSG_ERROR reply: s32 error (negative errno, 0 = ack), the request's nlmsghdr (capped: no
 * payload echoed, NLM_F_CAPPED), then ext-ack TLVs (NLM_F_ACK_TLVS) MSG and COOKIE (= code).
 * `request` may be a partial header (malformed input): it is zero-padded to 16 bytes.
 */
export function formatError(e: { errno: number; request: NlMsgHeader | Buffer; message?: string | null; code?: string | null; pid?: number }): Buffer {
  if (!Number.isInteger(e.errno) || e.errno < 0) throw new DstError('DST_ERR_INVALID', `errno must be a positive number or 0, got ${e.errno}`);
  const err = Buffer.alloc(4);
  writeS32.call(err, -e.errno, 0);
  let echo: Buffer;
  let seq: number;
  if (Buffer.isBuffer(e.request)) {
    echo = Buffer.alloc(NLMSG_HDRLEN);
    e.request.copy(echo, 0, 0, Math.min(NLMSG_HDRLEN, e.request.length));
    seq = e.request.length >= 12 ? parseNlMsgHeader(echo).x.seq : 0;
  } else {
    echo = formatNlMsgHeader(e.request);
    seq = e.request.seq;
  }
  const tlvs: Buffer[] = [];
  if (e.message != null) tlvs.push(formatAttr(NLMSGERR_ATTR_MSG, putCString(truncateUtf8(e.message, 4000))));
  if (e.code != null) tlvs.push(formatAttr(NLMSGERR_ATTR_COOKIE, putCString(e.code)));
  const flags = NLM_F_CAPPED | (tlvs.length ? NLM_F_ACK_TLVS : 0);
  return formatMessage({ type: NLMSG_ERROR, flags, seq, pid: e.pid ?? 0, payload: [err, echo, ...tlvs] });
}

function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let out = Buffer.from(s).subarray(0, maxBytes).toString();
  if (out.endsWith('\uFFFD')) out = out.slice(0, -1);
  return out + '…';
}

/** Parse an NLMSG_ERROR payload (the flags are the error message's own nlmsg_flags). */
export function parseError(r: Buffer, flags: number): ParseResult<NlError> {
  if (r.length < 4 + NLMSG_HDRLEN) throw badFrame(`NLMSG_ERROR truncated: ${r.length} of ${4 + NLMSG_HDRLEN} bytes`);
  const error = readS32.call(r, 0);
  if (error > 0) throw badFrame(`NLMSG_ERROR carries a positive error ${error}`);
  const { x: request } = parseNlMsgHeader(r.subarray(4));
  let off = 4 + NLMSG_HDRLEN;
  if (!(flags & NLM_F_CAPPED)) {
    // the whole request was echoed: skip its payload
    const echoed = Math.max(0, request.len - NLMSG_HDRLEN);
    if (off + echoed > r.length) throw badFrame('NLMSG_ERROR: echoed request runs past the message');
    off += align(echoed);
  }
  let message: string | null = null;
  let code: string | null = null;
  if (flags & NLM_F_ACK_TLVS && off < r.length) {
    for (const a of parseAttrs(r.subarray(off), 'NLMSG_ERROR ext-ack')) {
      if (a.type === NLMSGERR_ATTR_MSG) message = getCString(a.data, 'ext-ack message');
      else if (a.type === NLMSGERR_ATTR_COOKIE) code = getCString(a.data, 'ext-ack cookie');
      // other ext-ack attributes (offset, policy) carry nothing we use
    }
  }
  return { x: { error, request, message, code }, consumed: r.length };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A NUL-terminated UTF-8 string payload. */
export function getCString(data: Buffer, what: string): string {
  if (data.length === 0 || data[data.length - 1] !== 0) throw badFrame(`${what}: string is not NUL-terminated`);
  const body = data.subarray(0, data.length - 1);
  if (body.includes(0)) throw badFrame(`${what}: string contains a NUL byte`);
  try {
    return utf8.decode(body);
  } catch {
    throw badFrame(`${what}: string is not valid UTF-8`);
  }
}

export { putCString };
