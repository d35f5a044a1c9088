// Canonical suite names (DESIGN §9), declared once: the name a cipher and a hash make, and what a
// name says about its suite. Pure and free of node:crypto, so the CLI reads names without loading
// the cipher code; suites.ts builds its suites on these names.
/** The ciphers and hashes by canonical name (the netlink schema's value sets). */
export const CIPHER_NAMES = ['none', 'aes-gcm', 'chacha20-poly1305', 'aes-cbc', 'aes-ctr'] as const;
export const HASH_NAMES = ['none', 'sha256', 'sha512', 'blake2b512'] as const;
export type CipherAlg = (typeof CIPHER_NAMES)[number];
export type HashAlg = (typeof HASH_NAMES)[number];

/**
 * The canonical name of cipher + hash (`keyed`: a hash key is configured): aes-gcm,
 * chacha20-poly1305, aes-cbc+hmac-sha256, aes-ctr+hmac-sha512, none+hmac-blake2b512, none+sha256,
 * none. Names every combination, also one makeSuite refuses (an AEAD with a hash, a CBC/CTR
 * cipher without a key), so a refusal can still say what was asked for.
 */
export function suiteNameOf(cipher: CipherAlg, hash: HashAlg, keyed: boolean): string {
  if (cipher === 'aes-gcm' || cipher === 'chacha20-poly1305') return cipher;
  if (cipher === 'aes-cbc' || cipher === 'aes-ctr') return `${cipher}+hmac-${hash}`;
  if (hash === 'none') return 'none';
  return keyed ? `none+hmac-${hash}` : `none+${hash}`;
}

/** An unkeyed digest (none+sha256, ...): detects accidents only, authenticates nothing. */
export function isUnkeyedDigest(suite: string): boolean {
  return /^none\+(?!hmac-)/.test(suite);
}
