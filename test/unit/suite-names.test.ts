// Suite names declared once (protocol/suite-names.ts): the name makeSuite gives every valid
// combination is suiteNameOf's, invalid combinations are still named, unkeyed digests are told apart.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { CIPHER_NAMES, HASH_NAMES, isUnkeyedDigest, suiteNameOf } from '../../src/protocol/suite-names.js';
import { makeSuite, suiteByName } from '../../src/protocol/suites.js';

describe('suite names', () => {
  it('every suite makeSuite builds is named by suiteNameOf and parsed back by suiteByName', () => {
    let valid = 0;
    for (const cipher of CIPHER_NAMES) {
      for (const hash of HASH_NAMES) {
        for (const keyed of [false, true]) {
          let suite;
          try {
            suite = makeSuite(cipher, hash, keyed);
          } catch {
            continue;
          }
          valid++;
          assert.equal(suite.name, suiteNameOf(cipher, hash, keyed));
          assert.equal(suiteByName(suite.name).name, suite.name);
        }
      }
    }
    assert.ok(valid >= 12, `only ${valid} valid combinations`);
  });

  it('names combinations makeSuite refuses (for refusal messages)', () => {
    assert.equal(suiteNameOf('aes-gcm', 'sha256', false), 'aes-gcm');
    assert.equal(suiteNameOf('aes-cbc', 'sha256', false), 'aes-cbc+hmac-sha256');
    assert.throws(() => makeSuite('aes-cbc', 'sha256', false), /keyed hash/);
  });

  it('unkeyed digests are told apart from HMACs and ciphers', () => {
    assert.equal(isUnkeyedDigest('none+sha256'), true);
    assert.equal(isUnkeyedDigest('none+hmac-sha256'), false);
    assert.equal(isUnkeyedDigest('none'), false);
    assert.equal(isUnkeyedDigest('aes-ctr+hmac-sha512'), false);
  });
});
