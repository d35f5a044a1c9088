// What a failed open means is told apart: input that does not authenticate (AEAD tag, CBC padding)
// is the addon's -1 and DST_ERR_MAC for the frame; an OpenSSL failure is -2 and DST_ERR_INTERNAL,
// never reported as tampering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { open, suiteByName } from '../../src/protocol/suites.js';
import { CRYPT_OPENSSL_FAILED, CRYPT_REJECTED, cryptResult, nativeCipher } from '../../src/protocol/native-cipher.js';
import { DstError } from '../../src/util/errors.js';

test('an OpenSSL failure throws DST_ERR_INTERNAL naming it; a rejection and a length pass through', () => {
  assert.throws(() => cryptResult(CRYPT_OPENSSL_FAILED, 'aes-gcm', false),
    (e: unknown) => e instanceof DstError && e.code === 'DST_ERR_INTERNAL' && /OpenSSL failed to open a frame with aes-gcm/.test(e.message));
  assert.throws(() => cryptResult(CRYPT_OPENSSL_FAILED, 'aes-cbc', true), /OpenSSL failed to seal/);
  assert.equal(cryptResult(CRYPT_REJECTED, 'aes-gcm', false), CRYPT_REJECTED);
  assert.equal(cryptResult(4096, 'aes-gcm', false), 4096);
});

test('bad CBC padding under a valid MAC is rejected (-1 from the addon), reported as DST_ERR_MAC', () => {
  const suite = suiteByName('aes-cbc+hmac-sha256');
  const keys = { enc: randomBytes(32), mac: randomBytes(64) };
  const header = randomBytes(48), seq = 7, iv = randomBytes(16);
  // one block whose last byte is 0: no PKCS#7 padding ends that way
  const c = createCipheriv('aes-256-cbc', keys.enc, iv).setAutoPadding(false);
  const payload = Buffer.concat([iv, c.update(Buffer.alloc(16, 0)), c.final()]);
  const seqB = Buffer.alloc(8);
  seqB.writeUInt32BE(seq, 4);
  const tag = createHmac('sha256', keys.mac).update(seqB).update(header).update(payload).digest();
  assert.throws(() => open(suite, keys, seq, header, payload, tag),
    (e: unknown) => e instanceof DstError && e.code === 'DST_ERR_MAC' && /padding is bad \(frame 7\)/.test(e.message));
  if (nativeCipher) {
    assert.equal(nativeCipher.crypt(2, false, keys.enc, iv, null, payload.subarray(16), Buffer.alloc(32), 0, null), CRYPT_REJECTED);
  }
});
