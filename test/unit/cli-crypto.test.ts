// The CLI in-process: `dst crypto …` (names mapped, key files absolute, warnings, show and clear).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { type CryptoShow } from '../../src/engine/types.js';
import { run, CRYPTO_NONE } from '../helpers/cli-harness.js';

describe('crypto', () => {
  test('set: names mapped, key files absolute, threads parsed', async () => {
    const shown: CryptoShow = { cipher: 'aes-gcm', hash: 'none', suite: 'aes-gcm', threads: 2, cipherKeyFile: '/work/here/k', hashKeyFile: null };
    const r = await run(['crypto', 'set', 'vol', '--cipher', 'gcm(aes)', '--cipher-key-file', 'k', '--threads', '2'], { responses: { 'crypto-set': () => shown } });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[0]!.args, { name: 'vol', cipher: 'aes-gcm', cipherKeyFile: '/work/here/k', threads: 2 });
    assert.match(r.out, /suite\s+aes-gcm/);
    assert.equal(r.err, '');
  });

  test('set: an unkeyed digest warns that it authenticates nothing', async () => {
    const shown: CryptoShow = { cipher: 'none', hash: 'sha256', suite: 'none+sha256', threads: 2, cipherKeyFile: null, hashKeyFile: null };
    let r = await run(['crypto', 'set', 'vol', '--hash', 'sha256'], { responses: { 'crypto-set': () => shown } });
    assert.equal(r.code, 0);
    assert.deepEqual(r.calls[0]!.args, { name: 'vol', hash: 'sha256' });
    assert.match(r.err, /warning: .*detects accidents only and authenticates nothing/);
    const keyed: CryptoShow = { ...shown, suite: 'none+hmac-sha256', hashKeyFile: '/k' };
    r = await run(['crypto', 'set', 'vol', '--hash', 'hmac(sha256)', '--hash-key-file', '/k'], { responses: { 'crypto-set': () => keyed } });
    assert.deepEqual(r.calls[0]!.args, { name: 'vol', hash: 'sha256', hashKeyFile: '/k' });
    assert.equal(r.err, '');
  });

  test('set: nothing to set or bad names are usage errors', async () => {
    let r = await run(['crypto', 'set', 'vol']);
    assert.equal(r.code, 2);
    assert.match(r.err, /at least one of --cipher/);
    r = await run(['crypto', 'set', 'vol', '--cipher', 'rot13']);
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid cipher "rot13" for --cipher/);
    r = await run(['crypto', 'set', 'vol', '--hash', 'md5']);
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid hash "md5" for --hash/);
  });

  test('show --json is the crypto object; clear', async () => {
    let r = await run(['crypto', 'show', 'vol', '--json'], { responses: { 'crypto-show': () => CRYPTO_NONE } });
    assert.deepEqual(JSON.parse(r.out), CRYPTO_NONE);
    r = await run(['crypto', 'clear', 'vol'], { responses: { 'crypto-clear': () => CRYPTO_NONE } });
    assert.deepEqual(r.calls[0], { cmd: 'crypto-clear', args: { name: 'vol' } });
  });
});
