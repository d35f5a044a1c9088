// NBD protocol constants, names and the errno mapping: the vocabulary every NBD codec shares.
// Pure, no I/O. Constants are the 16/32-bit WIRE values from NetworkBlockDevice/nbd doc/proto.md
// (see /work/shared/reference/nbd-protocol.md), not the kernel's packed `type | flags << 16`
// values, and NBD_REPLY_TYPE_BLOCK_STATUS is 5.
//
// The codecs live beside it, one per concern: nbd-decoder.ts (the server's streaming decoder),
// nbd-options.ts (handshake and option negotiation), nbd-replies.ts (transmission requests and
// replies). Encoders return a Buffer, or a Buffer[] when a data payload should go out with writev
// without being copied.
import { DstError } from '../util/errors.js';

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

/** A malformed NBD stream or structure (the peer is broken: the connection is dropped). */
export function badFrame(message: string): DstError {
  return new DstError('DST_ERR_BAD_FRAME', message, { errno: 'EPROTO' });
}
