// Key files for crypto tests (DESIGN §9): the three accepted forms — hex (≥ 64 hex digits),
// `base64:` prefix, raw bytes (≥ 32, never trimmed) — written 0600, plus every text form a leak of
// the key could take (to search outputs, logs and config files for it).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type KeyForm = 'hex' | 'base64' | 'raw';

export interface KeyFile {
  path: string;
  form: KeyForm;
  /** the key bytes the engine derives from the file */
  key: Buffer;
  /** the file's content */
  content: Buffer;
}

/** A printable raw key (no hex-only, no `base64:` prefix): easy to spot if it leaks as text. */
function printableRaw(n: number): Buffer {
  const alphabet = 'ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ_-.';
  const r = randomBytes(n);
  return Buffer.from(Array.from(r, (b) => alphabet[b % alphabet.length]!).join(''), 'latin1');
}

/**
 * Write a key file `<dir>/<name>` in `form` (mode 0600). hex: 32 random bytes as 64 hex digits
 * plus a newline; base64: `base64:` + 32 random bytes; raw: `bytes` as given, else 40 printable
 * random bytes (no newline: raw keys are never trimmed).
 */
export function makeKeyFile(dir: string, name: string, form: KeyForm, bytes?: Buffer): KeyFile {
  const path = join(dir, name);
  let key: Buffer;
  let content: Buffer;
  if (form === 'hex') {
    key = bytes ?? randomBytes(32);
    content = Buffer.from(`${key.toString('hex')}\n`, 'latin1');
  } else if (form === 'base64') {
    key = bytes ?? randomBytes(32);
    content = Buffer.from(`base64:${key.toString('base64')}\n`, 'latin1');
  } else {
    key = bytes ?? printableRaw(40);
    content = key;
  }
  writeFileSync(path, content, { mode: 0o600 });
  return { path, form, key, content };
}

/** Every way a key could show up in text or bytes: raw bytes, hex (both cases), base64, base64url, file content. */
export function keyNeedles(k: KeyFile): { what: string; bytes: Buffer }[] {
  const out = [
    { what: `${k.form} key ${k.path}: raw bytes`, bytes: k.key },
    { what: `${k.form} key ${k.path}: hex`, bytes: Buffer.from(k.key.toString('hex'), 'latin1') },
    { what: `${k.form} key ${k.path}: HEX`, bytes: Buffer.from(k.key.toString('hex').toUpperCase(), 'latin1') },
    { what: `${k.form} key ${k.path}: base64`, bytes: Buffer.from(k.key.toString('base64').replace(/=+$/, ''), 'latin1') },
    { what: `${k.form} key ${k.path}: base64url`, bytes: Buffer.from(k.key.toString('base64url'), 'latin1') },
    { what: `${k.form} key ${k.path}: file content`, bytes: Buffer.from(k.content.toString('latin1').trim(), 'latin1') },
    // a key printed as a JSON array of numbers or as a Node Buffer dump
    { what: `${k.form} key ${k.path}: byte list`, bytes: Buffer.from(Array.from(k.key.subarray(0, 12)).join(','), 'latin1') },
  ];
  // A 16-byte prefix of the hex form catches truncated dumps ("key 0a1b2c…").
  out.push({ what: `${k.form} key ${k.path}: hex prefix`, bytes: Buffer.from(k.key.subarray(0, 8).toString('hex'), 'latin1') });
  return out;
}

/** Names of the needles of `keys` found in `haystack` (empty = no leak). */
export function findKeyLeaks(haystack: Buffer | string, keys: readonly KeyFile[]): string[] {
  const hay = typeof haystack === 'string' ? Buffer.from(haystack, 'utf8') : haystack;
  const found: string[] = [];
  for (const k of keys) {
    for (const n of keyNeedles(k)) {
      if (n.bytes.length >= 8 && hay.indexOf(n.bytes) >= 0) found.push(n.what);
    }
  }
  return found;
}
