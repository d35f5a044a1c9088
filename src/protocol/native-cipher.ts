// The in-place cipher (native/cipher.c), when it was built: it runs a frame's payload through
// OpenSSL straight into the caller's buffer, where node:crypto's cipher.update() allocates and
// copies per call. Loading a module is the only side effect here; suites.ts decides when to use it.
//
// DST_NATIVE_CIPHER=0 turns it off (node:crypto everywhere), for comparing the two and for a
// machine where the addon misbehaves.
import { createRequire } from 'node:module';

export type NativeCipherId = 0 | 1 | 2 | 3;

export interface NativeCipher {
  /** Bytes written at out[at..], or -1 when an AEAD tag does not verify / CBC padding is bad. */
  crypt(cipher: NativeCipherId, encrypt: boolean, key: Buffer, iv: Buffer, aad: Buffer | null, input: Buffer, out: Buffer, at: number, tag: Buffer | null): number;
  /** the OpenSSL it runs on (Node's own) */
  readonly openssl: string;
}

export interface CipherImplementation {
  /** 'native': native/cipher.c; 'node': node:crypto */
  kind: 'native' | 'node';
  /** OpenSSL version (native), or why the native cipher is not in use (node) */
  detail: string;
}

function load(): { cipher: NativeCipher | null; impl: CipherImplementation } {
  if (process.env.DST_NATIVE_CIPHER === '0') return { cipher: null, impl: { kind: 'node', detail: 'DST_NATIVE_CIPHER=0' } };
  try {
    // dist/src/protocol/ → the package root, where node-gyp puts build/
    const cipher = createRequire(import.meta.url)('../../../build/Release/dst_cipher.node') as NativeCipher;
    return { cipher, impl: { kind: 'native', detail: cipher.openssl } };
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' ? 'not built, npm install builds it' : `failed to load: ${(e as Error).message}`;
    return { cipher: null, impl: { kind: 'node', detail: `native cipher ${why}` } };
  }
}

const loaded = load();

export const nativeCipher: NativeCipher | null = loaded.cipher;
export const cipherImplementation: CipherImplementation = loaded.impl;
/** For status and logs: "native (OpenSSL 3.0.19 …)" or "node:crypto: why not native". */
export const cipherImplementationText = loaded.impl.kind === 'native' ? `native (${loaded.impl.detail})` : `node:crypto: ${loaded.impl.detail}`;
