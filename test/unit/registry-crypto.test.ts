// Registry: crypto set/show/clear — names (ours and the original's kernel names), canonical suites,
// key-file checks (hex / base64: / raw, too short), and that no key byte is ever shown.
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DstError } from '../../src/util/errors.js';
import { checkKeyFile, suiteName } from '../../src/engine/validate.js';
import { formatConfig } from '../../src/engine/config.js';
import { DEFAULT_CRYPTO, type CryptoSetArgs } from '../../src/engine/types.js';
import { HEX_KEY, makeRig, type TestRig } from './registry-fakes.js';

describe('registry: crypto', () => {
  let rig: TestRig;
  let ck: string;
  let hk: string;
  beforeEach(async () => {
    rig = makeRig();
    rig.disk('disk.img', 1 << 20);
    ck = rig.keyFile('cipher.key', HEX_KEY);
    hk = rig.keyFile('hash.key', 'base64:' + Buffer.alloc(32, 7).toString('base64'));
    await rig.registry.add({ name: 'vol', role: 'export', size: null, disk: join(rig.dir, 'disk.img'), listen: '127.0.0.1:0' });
  });
  afterEach(() => rig.cleanup());

  async function refusedSet(args: Omit<CryptoSetArgs, 'name'>, re?: RegExp): Promise<void> {
    const before = rig.snapshot();
    const changes = rig.runtimes.get('vol')!.changes;
    await assert.rejects(rig.registry.cryptoSet({ name: 'vol', ...args }), (err: unknown) => {
      assert.ok(err instanceof DstError, String(err));
      assert.ok(err.code === 'DST_ERR_INVALID' || err.code === 'DST_ERR_NOT_FOUND', err.code);
      assert.match(err.message, /^crypto set vol: /);
      if (re) assert.match(err.message, re);
      return true;
    });
    assert.equal(rig.snapshot(), before);
    assert.equal(rig.runtimes.get('vol')!.changes, changes);
  }

  const suiteOf = async (args: Omit<CryptoSetArgs, 'name'>): Promise<string> => {
    await rig.registry.cryptoClear('vol');
    return (await rig.registry.cryptoSet({ name: 'vol', ...args })).suite;
  };

  it('computes canonical suite names, accepting kernel names', async () => {
    assert.equal(await suiteOf({ cipher: 'aes-gcm', cipherKeyFile: ck }), 'aes-gcm');
    assert.equal(await suiteOf({ cipher: 'gcm(aes)', cipherKeyFile: ck }), 'aes-gcm');
    assert.equal(await suiteOf({ cipher: 'chacha20-poly1305', cipherKeyFile: ck }), 'chacha20-poly1305');
    assert.equal(await suiteOf({ cipher: 'aes-cbc', hash: 'sha256', cipherKeyFile: ck, hashKeyFile: hk }), 'aes-cbc+hmac-sha256');
    assert.equal(await suiteOf({ cipher: 'cbc(aes)', hash: 'hmac(sha256)', cipherKeyFile: ck, hashKeyFile: hk }), 'aes-cbc+hmac-sha256');
    assert.equal(await suiteOf({ cipher: 'ctr(aes)', hash: 'hmac(sha512)', cipherKeyFile: ck, hashKeyFile: hk }), 'aes-ctr+hmac-sha512');
    assert.equal(await suiteOf({ hash: 'blake2b512', hashKeyFile: hk }), 'none+hmac-blake2b512');
    assert.equal(await suiteOf({ hash: 'sha256' }), 'none+sha256');
    assert.ok(rig.logs.some((l) => /none\+sha256 only detects accidents/.test(l)));
    assert.equal(await suiteOf({ cipher: 'none', hash: 'none' }), 'none');
    const show = rig.registry.cryptoShow('vol');
    assert.deepEqual(show, { cipher: 'none', hash: 'none', suite: 'none', threads: 4, cipherKeyFile: null, hashKeyFile: null });
  });

  it('refuses unknown names and incomplete combinations, changing nothing', async () => {
    await refusedSet({ cipher: 'rot13' }, /unknown cipher/);
    await refusedSet({ hash: 'md5' }, /unknown hash/);
    await refusedSet({ cipher: 'aes-gcm' }, /needs a key/);
    await refusedSet({ cipher: 'aes-cbc', cipherKeyFile: ck }, /keyed hash/);
    await refusedSet({ cipher: 'aes-ctr', hash: 'sha256', cipherKeyFile: ck }, /keyed hash/);
    await refusedSet({ cipher: 'aes-gcm', hash: 'sha256', cipherKeyFile: ck, hashKeyFile: hk }, /authenticates by itself/);
    await refusedSet({ hash: 'hmac(sha256)' }, /keyed: add --hash-key-file/);
    await refusedSet({ cipherKeyFile: ck }, /cipher is none/);
    await refusedSet({ hashKeyFile: hk }, /hash is none/);
    await refusedSet({ threads: 0 }, /threads/);
    await refusedSet({ threads: 65 }, /threads/);
  });

  it('checks key files: hex, base64:, raw; too short, missing, bad base64', async () => {
    const good = [
      rig.keyFile('hex', '  ' + 'AB'.repeat(32) + '\n'),
      rig.keyFile('b64', 'base64:' + Buffer.alloc(48, 1).toString('base64') + '\n'),
      rig.keyFile('raw', Buffer.alloc(32, 0x20)),
      rig.keyFile('raw-hexish', 'ab'.repeat(20)), // 40 hex digits: < 64, so 40 raw bytes
    ];
    for (const f of good) {
      assert.equal((await rig.registry.cryptoSet({ name: 'vol', cipher: 'aes-gcm', cipherKeyFile: f })).cipherKeyFile, f);
    }
    assert.equal(await checkKeyFile(good[0], 'x', null), 32);
    assert.equal(await checkKeyFile(good[1], 'x', null), 48);
    assert.equal(await checkKeyFile(good[3], 'x', null), 40);
    await refusedSet({ cipher: 'aes-gcm', cipherKeyFile: rig.keyFile('short-raw', Buffer.alloc(31, 1)) }, /31 bytes, at least 32/);
    await refusedSet({ cipher: 'aes-gcm', cipherKeyFile: rig.keyFile('short-b64', 'base64:' + Buffer.alloc(16).toString('base64')) }, /16 bytes/);
    await refusedSet({ cipher: 'aes-gcm', cipherKeyFile: rig.keyFile('bad-b64', 'base64:!!!not base64!!!') }, /invalid base64/);
    await refusedSet({ cipher: 'aes-gcm', cipherKeyFile: join(rig.dir, 'missing') }, /no such file \(ENOENT\)/);
    await refusedSet({ cipher: 'aes-gcm', cipherKeyFile: 'relative.key' }, /absolute/);
    await refusedSet({ cipher: 'aes-gcm', cipherKeyFile: rig.dir }, /not a regular file/);
  });

  it('merges with the current settings; an AEAD cipher drops the hash; clear keeps threads', async () => {
    await rig.registry.cryptoSet({ name: 'vol', cipher: 'aes-cbc', hash: 'sha512', cipherKeyFile: ck, hashKeyFile: hk, threads: 3 });
    let s = await rig.registry.cryptoSet({ name: 'vol', hash: 'sha256' });
    assert.equal(s.suite, 'aes-cbc+hmac-sha256');
    assert.equal(s.threads, 3);
    s = await rig.registry.cryptoSet({ name: 'vol', cipher: 'aes-gcm' });
    assert.deepEqual(s, { cipher: 'aes-gcm', hash: 'none', suite: 'aes-gcm', threads: 3, cipherKeyFile: ck, hashKeyFile: null });
    assert.deepEqual(rig.registry.show('vol').crypto, s);
    assert.equal(rig.registry.status().cryptoThreads, 3, 'the largest threads of any node');
    s = await rig.registry.cryptoClear('vol');
    assert.deepEqual(s, { ...DEFAULT_CRYPTO, suite: 'none', threads: 3 });
    assert.ok(rig.runtimes.get('vol')!.changes >= 4);
  });

  it('never shows, logs or saves key bytes', async () => {
    await rig.registry.cryptoSet({ name: 'vol', cipher: 'aes-ctr', hash: 'sha256', cipherKeyFile: ck, hashKeyFile: hk });
    const all = JSON.stringify(rig.registry.list()) + formatConfig({ logLevel: 'info', nodes: rig.registry.snapshot() }) + rig.logs.join('\n');
    assert.ok(!all.includes('a1a1a1a1'));
    assert.ok(!all.includes(Buffer.alloc(32, 7).toString('base64')));
    assert.ok(all.includes(ck) && all.includes(hk), 'paths are shown');
  });

  it('suiteName on configs', () => {
    assert.equal(suiteName({ ...DEFAULT_CRYPTO }), 'none');
    assert.throws(() => suiteName({ ...DEFAULT_CRYPTO, cipher: 'aes-cbc', cipherKeyFile: '/k', hash: 'sha256' }), /keyed hash/);
    assert.equal(suiteName({ ...DEFAULT_CRYPTO, cipher: 'aes-cbc', cipherKeyFile: '/k', hash: 'sha256', hashKeyFile: '/h' }), 'aes-cbc+hmac-sha256');
  });
});
