// Meaning checks shared by the registry (control commands) and the config parser: policy ranges,
// ACL entries, crypto names and suites, key files. Every check throws DstError naming `where`
// (e.g. "node set vol") and the offending value; none of them changes anything.
import { constants as fsConstants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { DstError, errnoOf } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { coversV4Mapped, formatCidr, parseCidr, type Cidr } from '../util/parse.js';
import { makeSuite, parseCipherName, parseHashName, parseKeyMaterial } from '../protocol/suites.js';
import { POLICY_BY_FIELD, boundOf, type PolicyField } from './policy.js';
import type { AclEntry, CipherName, CryptoConfig, CryptoShow, HashName, Limits, Perm, Policy } from './types.js';

export const MAX_CRYPTO_THREADS = 64;

function invalid(where: string, msg: string, errno: string | null = null): DstError {
  return new DstError('DST_ERR_INVALID', `${where}: ${msg}`, { errno });
}

function checkInt(where: string, key: string, v: unknown, min: number, max: number, unit = ''): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(where, `${key} must be an integer, got ${JSON.stringify(v)}`);
  if (v < min || v > max) throw invalid(where, `${key} ${v}${unit} out of range ${min}${unit}-${max}${unit}`);
  return v;
}

/** Apply a partial policy on top of `base`, checking every given field's range (bounds from the policy table). */
export function applyPolicy(base: Policy, patch: Partial<Policy>, limits: Limits, where: string): Policy {
  const out: Policy = { ...base };
  for (const field of Object.keys(patch) as PolicyField[]) {
    const k = POLICY_BY_FIELD.get(field);
    if (k === undefined) throw invalid(where, `unknown policy field ${JSON.stringify(field)}`);
    const v = patch[field];
    if (v === undefined) continue;
    out[k.field] = checkInt(where, k.key, v, k.min, boundOf(k.max, limits), k.kind === 'duration' ? 'ms' : '');
  }
  return out;
}

/** "r" "w" "rw" "none" "0" → Perm. */
export function parsePerm(text: unknown, where: string): Perm {
  const t = String(text ?? '').trim().toLowerCase();
  if (t === 'r' || t === 'w' || t === 'rw') return t;
  if (t === 'none' || t === '0') return 'none';
  throw invalid(where, `invalid permission ${JSON.stringify(text)}: use r, w, rw or none (0)`);
}

/**
 * Canonical ACL address ("10.1.2.3/8" → "10.0.0.0/8", "::ffff:1.2.3.4" and "::ffff:7f00:1/104" →
 * IPv4, prefix − 96). An entry that could never match is refused: an IPv6 prefix covering the
 * IPv4-mapped range (peers there are matched as IPv4).
 */
export function canonicalAddr(text: unknown, where: string): string {
  let cidr: Cidr;
  try {
    cidr = parseCidr(text);
  } catch (err) {
    throw invalid(where, (err as Error).message);
  }
  const canonical = formatCidr(cidr);
  if (coversV4Mapped(cidr)) {
    throw invalid(where, `ACL address ${canonical} never matches IPv4 peers (they are matched as IPv4, and an IPv6 prefix `
      + `shorter than /96 covering ::ffff:0:0/96 would only look as if it did): add 0.0.0.0/0 (or an IPv4 prefix) for IPv4 peers`);
  }
  return canonical;
}

/** "10.0.0.0/8 rw" or "192.0.2.7 r key-file=/path" → entry (syntax only; the key file is not read). */
export function parseAllowLine(text: unknown, where: string): AclEntry {
  const s = String(text ?? '').trim();
  const m = /^(\S+)\s+(\S+)(?:\s+key-file=(.+))?$/.exec(s);
  if (!m) throw invalid(where, `invalid ACL entry ${JSON.stringify(s)}: expected "ADDR[/PREFIX] r|w|rw|none [key-file=PATH]"`);
  const keyFile = m[3] === undefined ? null : m[3].trim();
  if (keyFile !== null && !isAbsolute(keyFile)) throw invalid(where, `ACL entry ${JSON.stringify(s)}: key-file must be an absolute path`);
  return { addr: canonicalAddr(m[1], where), perm: parsePerm(m[2], where), keyFile };
}

export function formatAllowLine(e: AclEntry): string {
  return `${e.addr} ${e.perm}${e.keyFile ? ` key-file=${e.keyFile}` : ''}`;
}

export function normalizeCipher(text: unknown, where: string): CipherName {
  try {
    return parseCipherName(String(text ?? ''));
  } catch (err) {
    throw invalid(where, (err as Error).message);
  }
}

export function normalizeHash(text: unknown, where: string): { hash: HashName; hmac: boolean } {
  try {
    return parseHashName(String(text ?? ''));
  } catch (err) {
    throw invalid(where, (err as Error).message);
  }
}

/** Check the combination of a crypto config and return its canonical suite name (DESIGN §9). */
export function suiteName(c: CryptoConfig, where = 'crypto'): string {
  if (c.cipher === 'none' && c.cipherKeyFile !== null) throw invalid(where, `a cipher key file is set but the cipher is none; give --cipher too`);
  if (c.cipher !== 'none' && c.cipherKeyFile === null) throw invalid(where, `cipher ${c.cipher} needs a key: add --cipher-key-file FILE`);
  if (c.hash === 'none' && c.hashKeyFile !== null) throw invalid(where, `a hash key file is set but the hash is none; give --hash too`);
  try {
    return makeSuite(c.cipher, c.hash, c.hashKeyFile !== null).name;
  } catch (err) {
    throw invalid(where, (err as Error).message);
  }
}

export function cryptoShow(c: CryptoConfig, defaultThreads: number): CryptoShow {
  let suite: string;
  try {
    suite = suiteName(c);
  } catch {
    suite = 'invalid';
  }
  return { cipher: c.cipher, hash: c.hash, suite, threads: c.threads ?? defaultThreads,
    cipherKeyFile: c.cipherKeyFile, hashKeyFile: c.hashKeyFile };
}

export function checkThreads(v: unknown, where: string): number {
  return checkInt(where, 'threads', v, 1, MAX_CRYPTO_THREADS);
}

/**
 * Read and check a key file (DESIGN §9): readable by the engine, a regular file, content that
 * makes a key of ≥ 32 bytes. Warns when group/world-readable. Returns the key's length only:
 * key bytes never leave this function.
 */
export async function checkKeyFile(path: unknown, where: string, log: Logger | null): Promise<number> {
  if (typeof path !== 'string' || path === '') throw invalid(where, 'key file path missing');
  if (!isAbsolute(path)) throw invalid(where, `key file ${path}: must be an absolute path`);
  let content: Buffer;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw invalid(where, `key file ${path}: not a regular file`);
    await access(path, fsConstants.R_OK);
    content = await readFile(path);
    if ((st.mode & 0o044) !== 0) {
      log?.warn(`key file ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
        { op: where });
    }
  } catch (err) {
    if (err instanceof DstError) throw err;
    const errno = errnoOf(err);
    log?.debug(`key file ${path}: ${(err as Error).message}`, { op: where, errno });
    if (errno === 'ENOENT') throw new DstError('DST_ERR_NOT_FOUND', `${where}: key file ${path}: no such file (ENOENT)`, { errno });
    throw invalid(where, `key file ${path}: cannot read it (${errno ?? 'error'})`, errno);
  }
  try {
    const key = parseKeyMaterial(content, path);
    const n = key.length;
    key.fill(0);
    return n;
  } catch (err) {
    throw invalid(where, (err as Error).message);
  } finally {
    content.fill(0);
  }
}
