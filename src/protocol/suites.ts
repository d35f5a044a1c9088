// Crypto suites (DESIGN §9): pure seal/open of DST frames, key derivation and key proofs.
// No I/O: the engine reads key files and owns sockets; this module only transforms bytes.
//
// Per frame, per direction, a sequence number `seq` (u64, from 0 after AUTH) is bound into
// every tag and nonce, so a reordered, replayed, truncated or altered frame fails to open.
//  - AEAD (aes-gcm, chacha20-poly1305): nonce = 4 zero bytes ‖ seq (12 bytes); AAD = header;
//    payload encrypted; 16-byte tag.
//  - aes-cbc+hmac-h: random 16-byte IV carried before the ciphertext (PKCS#7 padded);
//    tag = HMAC-h(mac key, seq ‖ header ‖ IV ‖ ciphertext) (encrypt-then-MAC).
//  - aes-ctr+hmac-h: IV = seq ‖ 0^8 (the low half counts blocks; a frame ≤ 32 MiB never reaches
//    the next seq's range); tag = HMAC-h(mac key, seq ‖ header ‖ ciphertext).
//  - none+hmac-h: tag = HMAC-h(mac key, seq ‖ header ‖ payload).
//  - none+h: tag = h(seq ‖ header ‖ payload): detects accidents only; authenticates nothing.
//  - none: no tag.
// The header that is authenticated already carries the sealed payload and tag lengths, so the
// sender computes them first with sealedLength()/tagLength.
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { DstError } from '../util/errors.js';
import { CRYPT_REJECTED, cryptResult, nativeCipher, type NativeCipherId } from './native-cipher.js';
import { suiteNameOf, type CipherAlg, type HashAlg } from './suite-names.js';

const EMPTY = Buffer.alloc(0);

export type { CipherAlg, HashAlg };

export interface Suite {
  /** canonical name: aes-gcm, chacha20-poly1305, aes-cbc+hmac-sha256, aes-ctr+hmac-sha512, none+hmac-blake2b512, none+sha256, none */
  name: string;
  cipher: CipherAlg;
  hash: HashAlg;
  /** the hash is an HMAC (keyed) */
  keyed: boolean;
  /** a key is needed (any cipher or a keyed hash) */
  needsKey: boolean;
  tagLength: number;
}

const HASHES: readonly HashAlg[] = ['sha256', 'sha512', 'blake2b512'];
const DIGEST_LEN: Record<Exclude<HashAlg, 'none'>, number> = { sha256: 32, sha512: 64, blake2b512: 64 };
type Cipher = Exclude<CipherAlg, 'none'>;
const NODE_CIPHER: Record<Cipher, string> = {
  'aes-gcm': 'aes-256-gcm', 'chacha20-poly1305': 'chacha20-poly1305', 'aes-cbc': 'aes-256-cbc', 'aes-ctr': 'aes-256-ctr',
};
const NATIVE_ID: Record<Cipher, NativeCipherId> = { 'aes-gcm': 0, 'chacha20-poly1305': 1, 'aes-cbc': 2, 'aes-ctr': 3 };

/** Kernel-style names of the original utility → ours. */
const CIPHER_ALIASES: Record<string, CipherAlg> = {
  'aes-gcm': 'aes-gcm', 'gcm(aes)': 'aes-gcm', 'chacha20-poly1305': 'chacha20-poly1305', 'rfc7539(chacha20,poly1305)': 'chacha20-poly1305',
  'aes-cbc': 'aes-cbc', 'cbc(aes)': 'aes-cbc', 'aes-ctr': 'aes-ctr', 'ctr(aes)': 'aes-ctr', 'none': 'none',
};

export function parseCipherName(text: string): CipherAlg {
  const c = CIPHER_ALIASES[text.trim().toLowerCase()];
  if (!c) throw new DstError('DST_ERR_INVALID', `unknown cipher ${JSON.stringify(text)}: use aes-gcm, chacha20-poly1305, aes-cbc, aes-ctr or none`);
  return c;
}

/** Returns the hash and whether the name itself said "hmac(...)". */
export function parseHashName(text: string): { hash: HashAlg; hmac: boolean } {
  const t = text.trim().toLowerCase();
  const m = /^hmac\((.+)\)$/.exec(t) ?? /^hmac-(.+)$/.exec(t);
  const base = m ? m[1]! : t;
  if (base === 'none' && !m) return { hash: 'none', hmac: false };
  if (!(HASHES as readonly string[]).includes(base)) {
    throw new DstError('DST_ERR_INVALID', `unknown hash ${JSON.stringify(text)}: use sha256, sha512, blake2b512 or none`);
  }
  return { hash: base as HashAlg, hmac: m !== null };
}

/** Build the suite from configured algorithms; `keyed` = a hash key is configured. */
export function makeSuite(cipher: CipherAlg, hash: HashAlg, keyed: boolean): Suite {
  const name = suiteNameOf(cipher, hash, keyed);
  if (cipher === 'aes-gcm' || cipher === 'chacha20-poly1305') {
    if (hash !== 'none') throw new DstError('DST_ERR_INVALID', `cipher ${cipher} authenticates by itself: use --hash none with it`);
    return { name, cipher, hash, keyed: false, needsKey: true, tagLength: 16 };
  }
  if (cipher === 'aes-cbc' || cipher === 'aes-ctr') {
    if (hash === 'none' || !keyed) throw new DstError('DST_ERR_INVALID', `cipher ${cipher} needs a keyed hash: add --hash sha256 --hash-key-file FILE`);
    return { name, cipher, hash, keyed: true, needsKey: true, tagLength: DIGEST_LEN[hash] };
  }
  if (hash === 'none') return { name, cipher, hash, keyed: false, needsKey: false, tagLength: 0 };
  return { name, cipher, hash, keyed, needsKey: keyed, tagLength: DIGEST_LEN[hash] };
}

/** Parse a canonical suite name (as sent in HELLO). */
export function suiteByName(name: string): Suite {
  if (name === 'none') return makeSuite('none', 'none', false);
  if (name === 'aes-gcm' || name === 'chacha20-poly1305') return makeSuite(name, 'none', false);
  const m = /^(aes-cbc|aes-ctr|none)\+(hmac-)?(sha256|sha512|blake2b512)$/.exec(name);
  if (!m || (m[1] !== 'none' && !m[2])) throw new DstError('DST_ERR_INVALID', `unknown suite ${JSON.stringify(name)}`);
  return makeSuite(m[1] as CipherAlg, m[3] as HashAlg, Boolean(m[2]));
}

/** Key file content → key bytes: trimmed ≥ 64 hex digits = hex; "base64:" prefix = base64; else raw bytes (≥ 32). */
export function parseKeyMaterial(content: Buffer, file: string): Buffer {
  const text = content.toString('latin1').trim();
  let key: Buffer;
  if (/^[0-9a-fA-F]{64,}$/.test(text) && text.length % 2 === 0) key = Buffer.from(text, 'hex');
  else if (text.startsWith('base64:')) {
    const b64 = text.slice(7).trim();
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new DstError('DST_ERR_INVALID', `key file ${file}: invalid base64 after "base64:"`);
    key = Buffer.from(b64, 'base64');
  } else key = content;
  if (key.length < 32) throw new DstError('DST_ERR_INVALID', `key file ${file}: key is ${key.length} bytes, at least 32 are needed`);
  return key;
}

/** Key id sent in HELLO: first 8 bytes of SHA-256 of the key. */
export function keyId(key: Buffer): Buffer {
  return createHash('sha256').update(key).digest().subarray(0, 8);
}

export interface DirectionKeys {
  enc: Buffer;
  mac: Buffer;
}

export interface SessionKeys {
  clientToServer: DirectionKeys;
  serverToClient: DirectionKeys;
  confirm: Buffer;
}

/** HKDF-SHA256 with salt = client nonce ‖ server nonce and per-direction, per-purpose labels. */
export function deriveSessionKeys(suite: Suite, inputKey: Buffer, clientNonce: Buffer, serverNonce: Buffer): SessionKeys {
  const salt = Buffer.concat([clientNonce, serverNonce]);
  const derive = (label: string, len: number): Buffer =>
    Buffer.from(hkdfSync('sha256', inputKey, salt, `dst2 ${suite.name} ${label}`, len));
  const macLen = suite.hash === 'none' ? 32 : DIGEST_LEN[suite.hash];
  return {
    clientToServer: { enc: derive('c2s enc', 32), mac: derive('c2s mac', macLen) },
    serverToClient: { enc: derive('s2c enc', 32), mac: derive('s2c mac', macLen) },
    confirm: derive('confirm', 32),
  };
}

/** Key proof of one side over the whole HELLO transcript (HELLO payload ‖ HELLO_REPLY payload). */
export function authProof(confirm: Buffer, role: 'client' | 'server', transcript: Buffer): Buffer {
  return createHmac('sha256', confirm).update(role).update(transcript).digest();
}

export function proofsEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Sealed payload length for a plaintext of `len` bytes. */
export function sealedLength(suite: Suite, len: number): number {
  return suite.cipher === 'aes-cbc' ? 16 + (Math.floor(len / 16) + 1) * 16 : len;
}

function seqBytes(seq: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 0);
  b.writeUInt32BE(seq >>> 0, 4);
  return b;
}

function aeadNonce(seq: number): Buffer {
  return Buffer.concat([Buffer.alloc(4), seqBytes(seq)]);
}

function macTag(suite: Suite, key: Buffer, parts: Buffer[]): Buffer {
  const h = suite.keyed ? createHmac(suite.hash, key) : createHash(suite.hash);
  for (const p of parts) h.update(p);
  return h.digest();
}

export interface Sealed {
  payload: Buffer;
  tag: Buffer;
}

// Node's cipher.update() returns a fresh buffer per call (allocated, then re-allocated to the
// exact length, zero-filled, and copied). Without the native cipher, feeding it pieces of this size
// and copying each into the caller's buffer keeps those temporaries cache-resident instead of a
// fresh 1 MiB pair per frame (16 KiB measured best of 16 KiB … 1 MiB, bench/README.md).
const PIECE = 16 * 1024;

/** AEAD extras: `aad` is authenticated; `tag` (16 bytes) is written when encrypting, checked when decrypting. */
interface Aead { aad: Buffer; tag: Buffer }

/**
 * Run `input` through `cipher` into out[at..] (room for the output; + 16 bytes to decrypt aes-cbc); returns the
 * offset after the last byte written, or CRYPT_REJECTED when decrypting finds an AEAD tag that does
 * not verify or bad CBC padding. A failure of the cipher itself throws (cryptResult).
 * The native cipher writes in place; node:crypto's output is copied over piece by piece.
 */
function cipherInto(cipher: Cipher, encrypt: boolean, key: Buffer, iv: Buffer, input: Buffer, out: Buffer, at: number, aead: Aead | null): number {
  if (nativeCipher) {
    return cryptResult(nativeCipher.crypt(NATIVE_ID[cipher], encrypt, key, iv, aead?.aad ?? null, input, out, at, aead?.tag ?? null), cipher, encrypt);
  }
  const name = NODE_CIPHER[cipher] as 'aes-256-gcm';
  const opts = aead ? { authTagLength: 16 } : undefined;
  const c = encrypt ? createCipheriv(name, key, iv, opts) : createDecipheriv(name, key, iv, opts);
  if (aead) {
    c.setAAD(aead.aad);
    if (!encrypt) (c as DecipherGCM).setAuthTag(aead.tag);
  }
  for (let i = 0; i < input.length; i += PIECE) at += c.update(input.subarray(i, Math.min(i + PIECE, input.length))).copy(out, at);
  let last: Buffer;
  try {
    last = c.final();
  } catch (err) {
    // decrypting, the final step is the check (tag, padding), as in native/cipher.c
    if (encrypt) throw err;
    return CRYPT_REJECTED;
  }
  at += last.copy(out, at);
  if (aead && encrypt) (c as CipherGCM).getAuthTag().copy(aead.tag);
  return at;
}

/**
 * Seal one frame into `out` (exactly sealedLength(plain.length) bytes; unused by suites without a
 * cipher, whose payload is `plain` itself) and return the tag. `header` is the 48-byte header
 * already carrying payloadLength = sealedLength(plain.length) and tagLength = suite.tagLength.
 */
export function sealInto(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, plain: Buffer, out: Buffer): Buffer {
  switch (suite.cipher) {
    case 'aes-gcm':
    case 'chacha20-poly1305': {
      const tag = Buffer.allocUnsafe(16);
      cipherInto(suite.cipher, true, keys.enc, aeadNonce(seq), plain, out, 0, { aad: header, tag });
      return tag;
    }
    case 'aes-cbc': {
      const iv = randomBytes(16);
      iv.copy(out, 0);
      cipherInto('aes-cbc', true, keys.enc, iv, plain, out, 16, null);
      return macTag(suite, keys.mac, [seqBytes(seq), header, out]);
    }
    case 'aes-ctr': {
      const seqB = seqBytes(seq);
      cipherInto('aes-ctr', true, keys.enc, Buffer.concat([seqB, Buffer.alloc(8)]), plain, out, 0, null);
      return macTag(suite, keys.mac, [seqB, header, out]);
    }
    case 'none':
      return suite.hash === 'none' ? EMPTY : macTag(suite, keys.mac, [seqBytes(seq), header, plain]);
  }
}

/** Seal one frame into a new buffer (see sealInto). */
export function seal(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, plain: Buffer): Sealed {
  if (suite.cipher === 'none') return { payload: plain, tag: sealInto(suite, keys, seq, header, plain, EMPTY) };
  const payload = Buffer.allocUnsafe(sealedLength(suite, plain.length));
  return { payload, tag: sealInto(suite, keys, seq, header, plain, payload) };
}

const macError = (what: string): DstError =>
  new DstError('DST_ERR_MAC', `frame authentication failed: ${what}`, { errno: 'EBADMSG' });

/**
 * Open one sealed frame into `out` (at least payload.length bytes; unused by suites without a
 * cipher, whose plaintext is `payload` itself) and return the plaintext length. Throws
 * DST_ERR_MAC for any alteration, reordering or replay; `out` then holds nothing to use.
 */
export function openInto(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, payload: Buffer, tag: Buffer, out: Buffer): number {
  if (tag.length !== suite.tagLength) throw macError(`tag is ${tag.length} bytes, suite ${suite.name} uses ${suite.tagLength}`);
  const mismatch = (): DstError => macError(`${suite.name} ${suite.cipher === 'none' ? 'digest' : 'tag'} mismatch (frame ${seq})`);
  const macOk = (): boolean => proofsEqual(macTag(suite, keys.mac, [seqBytes(seq), header, payload]), tag);
  switch (suite.cipher) {
    case 'aes-gcm':
    case 'chacha20-poly1305': {
      const end = cipherInto(suite.cipher, false, keys.enc, aeadNonce(seq), payload, out, 0, { aad: header, tag });
      if (end === CRYPT_REJECTED) throw mismatch();
      return end;
    }
    case 'aes-cbc': {
      if (!macOk()) throw mismatch();
      if (payload.length < 32 || payload.length % 16) throw macError('CBC payload is not IV plus whole blocks');
      const end = cipherInto('aes-cbc', false, keys.enc, payload.subarray(0, 16), payload.subarray(16), out, 0, null);
      // the MAC verified, so the sender padded wrongly: still a frame not to use
      if (end === CRYPT_REJECTED) throw macError(`${suite.name} padding is bad (frame ${seq})`);
      return end;
    }
    case 'aes-ctr': {
      if (!macOk()) throw mismatch();
      return cipherInto('aes-ctr', false, keys.enc, Buffer.concat([seqBytes(seq), Buffer.alloc(8)]), payload, out, 0, null);
    }
    case 'none':
      if (suite.hash !== 'none' && !macOk()) throw mismatch();
      return payload.length;
  }
}

/** Open one sealed frame into a new buffer (see openInto). */
export function open(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, payload: Buffer, tag: Buffer): Buffer {
  if (suite.cipher === 'none') {
    openInto(suite, keys, seq, header, payload, tag, EMPTY);
    return payload;
  }
  const out = Buffer.allocUnsafe(payload.length);
  return out.subarray(0, openInto(suite, keys, seq, header, payload, tag, out));
}
