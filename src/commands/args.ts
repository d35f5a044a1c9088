// CLI-side syntax checks (exit 2). Each names the option that is wrong:
//   invalid size "12X" for --size: expected an integer with optional K, M, G or T
// Meaning (does the disk exist, is the port free, ...) is the engine's job (exit 1).
import { DstError } from '../util/errors.js';
import {
  formatCidr, formatHostPort, parseCidr, parseDuration, parseHostPort, parseNodeName, parseSize,
} from '../util/parse.js';
import type { CipherName, HashName, Perm } from '../engine/types.js';
import { usage } from './context.js';

/**
 * Run a shared parser (which throws DST_ERR_INVALID "invalid WHAT "VALUE": why") and re-throw
 * its error as a CLI input error that also names the option.
 */
export function checked<T>(option: string, what: string, value: unknown, parse: (v: unknown, what: string) => T): T {
  try {
    return parse(value, what);
  } catch (err) {
    if (!(err instanceof DstError)) throw err;
    const prefix = `invalid ${what} ${JSON.stringify(String(value ?? '').trim())}`;
    const message = err.message.startsWith(prefix + ':')
      ? `${prefix} for ${option}${err.message.slice(prefix.length)}`
      : `${err.message} (${option})`;
    throw usage(message, { code: err.code === 'DST_ERR_USAGE' ? 'DST_ERR_USAGE' : 'DST_ERR_INVALID', errno: err.errno });
  }
}

export const optSize = (option: string, v: unknown): number => checked(option, 'size', v, parseSize);
export const optDuration = (option: string, v: unknown): number => checked(option, 'duration', v, parseDuration);

/** A node name (positional): the shared parser's message already names it. */
export function optName(v: unknown, what = 'node name'): string {
  try {
    return parseNodeName(typeof v === 'number' ? String(v) : v, what);
  } catch (err) {
    if (err instanceof DstError) throw usage(err.message, { code: 'DST_ERR_INVALID' });
    throw err;
  }
}

/** "IP:PORT", "[IPv6]:PORT", "host:PORT", normalised (IPv6 bracketed). */
export function optHostPort(option: string, v: unknown, allowZeroPort = true): string {
  return checked(option, 'address', v, (x, w) => formatHostPort(parseHostPort(x, w, allowZeroPort)));
}

/** "IP" or "IP/PREFIX", canonical (host bits cleared, IPv4-mapped as IPv4). */
export function optCidr(option: string, v: unknown): string {
  return checked(option, 'address', v, (x, w) => formatCidr(parseCidr(x, w)));
}

/** A non-negative decimal integer within [min, max]. */
export function optInt(option: string, v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const s = String(v ?? '').trim();
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer ${min}-${max}`;
    throw usage(`invalid number ${JSON.stringify(s)} for ${option}: expected ${range}`, { code: 'DST_ERR_INVALID' });
  }
  return n;
}

const PERMS: Record<string, Perm> = { r: 'r', w: 'w', rw: 'rw', wr: 'rw', '0': 'none', none: 'none' };

export function optPerm(option: string, v: unknown): Perm {
  const s = String(v ?? '').trim().toLowerCase();
  const p = PERMS[s];
  if (!p) throw usage(`invalid permission ${JSON.stringify(String(v ?? ''))} for ${option}: expected r, w, rw, or 0/none (deny)`, { code: 'DST_ERR_INVALID' });
  return p;
}

// ---- crypto names (DESIGN §9), the original utility's kernel names included ----

const CIPHERS: Record<string, CipherName> = {
  'none': 'none',
  'aes-gcm': 'aes-gcm', 'gcm(aes)': 'aes-gcm', 'rfc4106(gcm(aes))': 'aes-gcm',
  'chacha20-poly1305': 'chacha20-poly1305', 'chacha20poly1305': 'chacha20-poly1305',
  'rfc7539(chacha20,poly1305)': 'chacha20-poly1305',
  'aes-cbc': 'aes-cbc', 'cbc(aes)': 'aes-cbc',
  'aes-ctr': 'aes-ctr', 'ctr(aes)': 'aes-ctr',
};

const HASHES: Record<string, HashName> = {
  'none': 'none',
  'sha256': 'sha256', 'sha512': 'sha512', 'blake2b512': 'blake2b512', 'blake2b-512': 'blake2b512',
};

export function optCipher(option: string, v: unknown): CipherName {
  const s = String(v ?? '').trim().toLowerCase();
  const c = CIPHERS[s];
  if (!c) {
    throw usage(`invalid cipher ${JSON.stringify(String(v ?? ''))} for ${option}: expected aes-gcm, chacha20-poly1305, aes-cbc, aes-ctr or none (or gcm(aes), cbc(aes), ctr(aes))`,
      { code: 'DST_ERR_INVALID' });
  }
  return c;
}

/** `sha256`, or the kernel form `hmac(sha256)` (keyed: needs a key file). */
export function optHash(option: string, v: unknown): { hash: HashName; hmac: boolean } {
  const s = String(v ?? '').trim().toLowerCase();
  const m = /^hmac\((.+)\)$/.exec(s);
  const h = HASHES[m ? m[1]! : s];
  if (!h || (m && h === 'none')) {
    throw usage(`invalid hash ${JSON.stringify(String(v ?? ''))} for ${option}: expected sha256, sha512, blake2b512 or none (or hmac(sha256), ...)`,
      { code: 'DST_ERR_INVALID' });
  }
  return { hash: h, hmac: m !== null };
}

export const UNKEYED_DIGEST_WARNING =
  'an unkeyed digest detects accidents only and authenticates nothing: anyone on the path can change data and fix the digest; add a hash key file for an HMAC';
