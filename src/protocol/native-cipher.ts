// The in-place cipher (native/cipher.c), when it was built: it runs a frame's payload through
// OpenSSL straight into the caller's buffer, where node:crypto's cipher.update() allocates and
// copies per call. Loading a module is the only side effect here; suites.ts decides when to use it.
// The same addon carries mallocTrim (glibc only), which src/engine/heap.ts calls.
//
// DST_NATIVE_CIPHER=0 turns the cipher off (node:crypto everywhere), for comparing the two and
// for a machine where the addon misbehaves; mallocTrim stays available. DST_NATIVE=0 (all native
// code, util/native-addon.ts) does not load the addon: no native cipher, no mallocTrim.
import { DstError } from '../util/errors.js';
import { loadAddon } from '../util/native-addon.js';

export type NativeCipherId = 0 | 1 | 2 | 3;

/** crypt()'s result when the input does not authenticate: an AEAD tag that does not verify, bad CBC padding. */
export const CRYPT_REJECTED = -1;
/** crypt()'s result when OpenSSL failed at any other step: a fault of this machine, not of the input. */
export const CRYPT_OPENSSL_FAILED = -2;

export interface NativeCipher {
  /** Bytes written at out[at..], or CRYPT_REJECTED, or CRYPT_OPENSSL_FAILED. */
  crypt(cipher: NativeCipherId, encrypt: boolean, key: Buffer, iv: Buffer, aad: Buffer | null, input: Buffer, out: Buffer, at: number, tag: Buffer | null): number;
  /** the OpenSSL it runs on (Node's own) */
  readonly openssl: string;
}

interface Addon extends NativeCipher {
  /** glibc malloc_trim(0): true when memory went back to the kernel; absent on other C libraries */
  mallocTrim?: () => boolean;
}

export interface CipherImplementation {
  /** 'native': native/cipher.c; 'node': node:crypto */
  kind: 'native' | 'node';
  /** OpenSSL version (native), or why the native cipher is not in use (node) */
  detail: string;
}

function load(): { cipher: NativeCipher | null; impl: CipherImplementation; trim: (() => boolean) | null } {
  const { addon, why } = loadAddon<Addon>('dst_cipher');
  if (!addon) return { cipher: null, impl: { kind: 'node', detail: `native cipher ${why}` }, trim: null };
  const trim = addon.mallocTrim ?? null;
  if (process.env.DST_NATIVE_CIPHER === '0') return { cipher: null, impl: { kind: 'node', detail: 'DST_NATIVE_CIPHER=0' }, trim };
  return { cipher: addon, impl: { kind: 'native', detail: addon.openssl }, trim };
}

const loaded = load();

/** glibc malloc_trim(0) from the addon (true: memory went back to the kernel); null when unavailable. */
export const mallocTrim: (() => boolean) | null = loaded.trim;
export const nativeCipher: NativeCipher | null = loaded.cipher;
export const cipherImplementation: CipherImplementation = loaded.impl;
/** For status and logs: "native (OpenSSL 3.0.19 …)" or "node:crypto: why not native". */
export const cipherImplementationText = loaded.impl.kind === 'native' ? `native (${loaded.impl.detail})` : `node:crypto: ${loaded.impl.detail}`;

/**
 * crypt()'s result as the offset after the output, or CRYPT_REJECTED (the caller reports the
 * frame); an OpenSSL failure throws DST_ERR_INTERNAL instead, so it is never taken for tampering.
 */
export function cryptResult(end: number, cipher: string, encrypt: boolean): number {
  if (end !== CRYPT_OPENSSL_FAILED) return end;
  throw new DstError('DST_ERR_INTERNAL', `native cipher: OpenSSL failed to ${encrypt ? 'seal' : 'open'} a frame with ${cipher} (not the frame's fault; DST_NATIVE_CIPHER=0 or DST_NATIVE=0 uses node:crypto)`, { errno: 'EIO' });
}
