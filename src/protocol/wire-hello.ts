// DST wire protocol v2, the HELLO / HELLO_REPLY / AUTH payloads: pure codec, no I/O, no state.
// Typed TLV fields (u16 type, u16 length, value). Unknown field types are skipped, so a newer peer
// may add fields an older one ignores.
import { DstError } from '../util/errors.js';
import { readU64, writeU64 } from './wire-header.js';

export const Access = { READ: 1, WRITE: 2 } as const;

/** HELLO_REPLY FEATURES bits: optional ops and checks the export serves. */
export const Feature = {
  /** Op.DIGEST */
  DIGEST: 0x01,
  /** HELLO MIRROR_CLAIM is enforced (an export that predates it ignores the field: no fencing) */
  MIRROR_CLAIM: 0x02,
  /** Op.BLOCK_STATUS */
  BLOCK_STATUS: 0x04,
  /** WRITE_ZEROES takes Flag.NO_HOLE and Flag.FAST_ZERO */
  ZERO_FLAGS: 0x08,
  /**
   * A WRITE_ZEROES with Flag.FAST_ZERO is honoured: the disk zeroes without writing zeroes (native
   * file ops loaded and working on it, or an NBD server advertising SEND_FAST_ZERO); without it,
   * FAST_ZERO fails with ENOTSUP every time
   */
  FAST_ZERO: 0x10,
} as const;

/** A mirror's claim on a leg: the remote engine that assembled mirror `uuid` last holds the highest session. */
export interface MirrorClaim {
  /** 16-byte mirror UUID */
  uuid: Buffer;
  /** u64, grows with each assembly of the mirror */
  session: bigint;
}

/** MIRROR_CLAIM value: 16-byte UUID, u64 session (big-endian). */
export const MIRROR_CLAIM_SIZE = 24;

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
  /** a mirror leg's claim (absent/null: a plain single-export client, not fenced by claims) */
  mirrorClaim?: MirrorClaim | null;
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
  /**
   * 16 random bytes, new each time the export starts serving (null from an export that predates
   * the field): a client that sees it change knows the export may have lost what it never flushed
   */
  instance: Buffer | null;
  /** Feature bits (0 from an export that predates the field: it serves none of them) */
  features: number;
}

export interface Auth {
  /** HMAC(confirm key, HELLO transcript) */
  proof: Buffer;
}

enum HelloField { VERSION = 1, EXPORT_NAME = 2, SESSION_ID = 3, ACCESS = 4, SUITE = 5, KEY_ID = 6, NONCE = 7, MIRROR_CLAIM = 8 }
enum ReplyField { IDENTITY = 1, SIZE = 2, BLOCK_SIZE = 3, MAX_REQUEST = 4, GRANTED = 5, SUITE = 6, NONCE = 7, MESSAGE = 8, INSTANCE = 9, FEATURES = 10 }
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
  if (h.mirrorClaim) parts.push(tlv(HelloField.MIRROR_CLAIM, encodeClaim(h.mirrorClaim)));
  return Buffer.concat(parts);
}

function encodeClaim(c: MirrorClaim): Buffer {
  if (c.uuid.length !== 16) throw new DstError('DST_ERR_INVALID', `mirror claim: uuid is ${c.uuid.length} bytes, expected 16`);
  if (c.session < 0n || c.session > 0xffff_ffff_ffff_ffffn) throw new DstError('DST_ERR_INVALID', `mirror claim: session ${c.session} is not a u64`);
  const out = Buffer.allocUnsafe(MIRROR_CLAIM_SIZE);
  c.uuid.copy(out, 0);
  out.writeBigUInt64BE(c.session, 16);
  return out;
}

export function decodeHello(buf: Buffer): Hello {
  const w = 'HELLO';
  const f = parseTlv(buf, w);
  const keyId = f.get(HelloField.KEY_ID);
  if (keyId && keyId.length !== 8) throw new DstError('DST_ERR_BAD_FRAME', `bad ${w}: key id is ${keyId.length} bytes, expected 8`);
  const claim = f.has(HelloField.MIRROR_CLAIM) ? need(f, HelloField.MIRROR_CLAIM, MIRROR_CLAIM_SIZE, w, 'mirror claim') : null;
  return {
    version: need(f, HelloField.VERSION, 1, w, 'version')[0]!,
    exportName: need(f, HelloField.EXPORT_NAME, null, w, 'export name').toString('utf8'),
    sessionId: Buffer.from(need(f, HelloField.SESSION_ID, 16, w, 'session id')),
    access: need(f, HelloField.ACCESS, 1, w, 'access')[0]!,
    suite: need(f, HelloField.SUITE, null, w, 'suite').toString('utf8'),
    keyId: keyId ? Buffer.from(keyId) : null,
    nonce: Buffer.from(need(f, HelloField.NONCE, 32, w, 'nonce')),
    mirrorClaim: claim ? { uuid: Buffer.from(claim.subarray(0, 16)), session: claim.readBigUInt64BE(16) } : null,
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
  if (r.instance !== null) parts.push(tlv(ReplyField.INSTANCE, r.instance));
  if (r.features !== 0) parts.push(tlv(ReplyField.FEATURES, u32(r.features)));
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
    instance: f.has(ReplyField.INSTANCE) ? Buffer.from(need(f, ReplyField.INSTANCE, 16, w, 'instance')) : null,
    features: f.has(ReplyField.FEATURES) ? need(f, ReplyField.FEATURES, 4, w, 'features').readUInt32BE(0) : 0,
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
