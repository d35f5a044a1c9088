// Key loading for the sealed channel (DESIGN §9). The engine reads key files itself, fresh at
// every handshake, so `crypto set` / `security add ... key-file=` apply at the next handshake.
//
// Key bytes never leave this module except as the returned Buffer, which the caller wipes once
// the session keys are derived. Errors and warnings name the file, never its content.
import { readFile, stat } from 'node:fs/promises';
import { DstError, errnoOf } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { keyId, makeSuite, parseKeyMaterial, type Suite } from '../protocol/suites.js';
import type { CryptoConfig } from './types.js';

/** Paths already warned about (loose permissions), so each handshake does not repeat it. */
const warned = new Set<string>();
const MAX_WARNED = 1024;

/** Largest key file read (a key is tens of bytes; refuse to slurp a disk image by mistake). */
export const MAX_KEY_FILE = 64 * 1024;

/**
 * Read one key file and parse it (hex / base64: / raw). Throws DST_ERR_AUTH with a message naming
 * the file and the errno; warns once per path when the file is group- or world-readable.
 */
export async function readKeyFile(path: string, log: Logger | null): Promise<Buffer> {
  let content: Buffer;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new DstError('DST_ERR_AUTH', `key file ${path}: not a regular file`);
    if (st.size > MAX_KEY_FILE) throw new DstError('DST_ERR_AUTH', `key file ${path}: ${st.size} bytes is too large for a key`);
    if ((st.mode & 0o044) !== 0 && !warned.has(path)) {
      if (warned.size >= MAX_WARNED) warned.clear();
      warned.add(path);
      log?.warn(`key file ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
        { op: 'key' });
    }
    content = await readFile(path);
  } catch (err) {
    if (err instanceof DstError) throw err;
    const errno = errnoOf(err);
    throw new DstError('DST_ERR_AUTH', `key file ${path}: cannot read it (${errno ?? (err as Error).message})`, { errno });
  }
  try {
    const key = parseKeyMaterial(content, path);
    // parseKeyMaterial returns `content` itself for raw keys: hand back a copy we own either way
    const out = Buffer.from(key);
    key.fill(0);
    return out;
  } catch (err) {
    throw new DstError('DST_ERR_AUTH', (err as Error).message);
  } finally {
    content.fill(0);
  }
}

/** The suite a crypto config selects (DESIGN §9); throws DST_ERR_AUTH on an inconsistent config. */
export function configSuite(c: Pick<CryptoConfig, 'cipher' | 'hash' | 'hashKeyFile'>): Suite {
  try {
    return makeSuite(c.cipher, c.hash, c.hashKeyFile !== null);
  } catch (err) {
    throw new DstError('DST_ERR_AUTH', `crypto: ${(err as Error).message}`);
  }
}

/**
 * The node's input key: cipher key ‖ hash key, as configured. null when the suite needs no key.
 * The caller wipes the returned buffer (fill(0)) once it has derived the session keys.
 */
export async function loadNodeKey(c: CryptoConfig, suite: Suite, log: Logger | null): Promise<Buffer | null> {
  if (!suite.needsKey) return null;
  const parts: Buffer[] = [];
  try {
    if (suite.cipher !== 'none') {
      if (c.cipherKeyFile === null) throw new DstError('DST_ERR_AUTH', `crypto: cipher ${c.cipher} needs a key file (--cipher-key-file)`);
      parts.push(await readKeyFile(c.cipherKeyFile, log));
    }
    if (suite.keyed) {
      if (c.hashKeyFile === null) throw new DstError('DST_ERR_AUTH', `crypto: hash ${c.hash} is keyed but no hash key file is set`);
      parts.push(await readKeyFile(c.hashKeyFile, log));
    }
    return parts.length === 1 ? Buffer.from(parts[0]!) : Buffer.concat(parts);
  } finally {
    for (const p of parts) p.fill(0);
  }
}

/** Key id as sent in HELLO (first 8 bytes of SHA-256 of the key). */
export { keyId };
