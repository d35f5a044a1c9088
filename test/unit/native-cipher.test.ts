// The in-place native cipher (native/cipher.c) against node:crypto as the oracle: same bytes and
// tags for every cipher and length, each side opens what the other sealed, any altered byte of an
// AEAD frame is refused, misuse throws, and it loads in worker threads (where the crypto pool
// runs it). Under CI it must be built: .ci/run's `npm ci` builds it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { open, seal, suiteByName } from '../../src/protocol/suites.js';
import { cipherImplementation, nativeCipher, type NativeCipher, type NativeCipherId } from '../../src/protocol/native-cipher.js';
import { skipOrFail } from '../helpers/tools.js';

const CIPHERS: readonly { id: NativeCipherId; name: string; iv: number; aead: boolean }[] = [
  { id: 0, name: 'aes-256-gcm', iv: 12, aead: true },
  { id: 1, name: 'chacha20-poly1305', iv: 12, aead: true },
  { id: 2, name: 'aes-256-cbc', iv: 16, aead: false },
  { id: 3, name: 'aes-256-ctr', iv: 16, aead: false },
];

function native(t: TestContext): NativeCipher | null {
  if (nativeCipher) return nativeCipher;
  skipOrFail(t, `native cipher unavailable: ${cipherImplementation.detail} (npm install builds it with node-gyp; needs g++, make, python3 and Node's headers)`);
  return null;
}

/** node:crypto's answer: ciphertext and (AEAD) tag. */
function oracleSeal(name: string, key: Buffer, iv: Buffer, aad: Buffer, plain: Buffer, aead: boolean): { out: Buffer; tag: Buffer | null } {
  const c = createCipheriv(name as 'aes-256-gcm', key, iv, aead ? { authTagLength: 16 } : undefined) as CipherGCM;
  if (aead) c.setAAD(aad);
  const out = Buffer.concat([c.update(plain), c.final()]);
  return { out, tag: aead ? c.getAuthTag() : null };
}

function oracleOpen(name: string, key: Buffer, iv: Buffer, aad: Buffer, sealed: Buffer, tag: Buffer | null): Buffer {
  const d = createDecipheriv(name as 'aes-256-gcm', key, iv, tag ? { authTagLength: 16 } : undefined) as DecipherGCM;
  if (tag) {
    d.setAAD(aad);
    d.setAuthTag(tag);
  }
  return Buffer.concat([d.update(sealed), d.final()]);
}

const frame = fc.record({
  cipher: fc.constantFrom(...CIPHERS),
  length: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 70_000 })),
  at: fc.integer({ min: 0, max: 40 }),
  shared: fc.boolean(),
});

test('native seal = node:crypto seal, and each opens what the other sealed, for every cipher and length', (t) => {
  const n = native(t);
  if (!n) return;
  fc.assert(fc.property(frame, ({ cipher, length, at, shared }) => {
    const key = randomBytes(32), iv = randomBytes(cipher.iv), aad = randomBytes(48), plain = randomBytes(length);
    const want = oracleSeal(cipher.name, key, iv, aad, plain, cipher.aead);
    // pool buffers are SharedArrayBuffer-backed: both kinds must work
    const out = shared ? Buffer.from(new SharedArrayBuffer(at + length + 16)) : Buffer.alloc(at + length + 16);
    const tag = cipher.aead ? Buffer.alloc(16) : null;
    const end = n.crypt(cipher.id, true, key, iv, cipher.aead ? aad : null, plain, out, at, tag);
    assert.equal(end, at + want.out.length);
    assert.ok(out.subarray(at, end).equals(want.out), 'ciphertext');
    if (tag) assert.ok(tag.equals(want.tag!), 'tag');
    assert.ok(oracleOpen(cipher.name, key, iv, aad, out.subarray(at, end), tag).equals(plain), 'node:crypto opens the native seal');
    const back = Buffer.alloc(want.out.length + 16);
    const got = n.crypt(cipher.id, false, key, iv, cipher.aead ? aad : null, want.out, back, 0, want.tag);
    assert.equal(got, length);
    assert.ok(back.subarray(0, got).equals(plain), 'native opens the node:crypto seal');
  }), { numRuns: 300 });
});

test('AEAD: one flipped bit in the AAD, ciphertext or tag → -1, never plaintext', (t) => {
  const n = native(t);
  if (!n) return;
  fc.assert(fc.property(fc.constantFrom(0, 1) as fc.Arbitrary<NativeCipherId>, fc.integer({ min: 1, max: 5000 }), fc.constantFrom('aad', 'payload', 'tag'), fc.nat(), fc.integer({ min: 0, max: 7 }),
    (id, length, where, pos, bit) => {
      const key = randomBytes(32), iv = randomBytes(12), aad = randomBytes(48), plain = randomBytes(length);
      const sealed = Buffer.alloc(length), tag = Buffer.alloc(16);
      n.crypt(id, true, key, iv, aad, plain, sealed, 0, tag);
      const victim = where === 'aad' ? aad : where === 'payload' ? sealed : tag;
      victim[pos % victim.length]! ^= 1 << bit;
      assert.equal(n.crypt(id, false, key, iv, aad, sealed, Buffer.alloc(length), 0, tag), -1);
    }), { numRuns: 200 });
});

test('misuse throws a TypeError naming the argument', (t) => {
  const n = native(t);
  if (!n) return;
  const key = randomBytes(32), iv = randomBytes(12), tag = Buffer.alloc(16), aad = Buffer.alloc(48), plain = Buffer.alloc(100);
  const bad: [string, () => unknown, RegExp][] = [
    ['short key', () => n.crypt(0, true, key.subarray(0, 16), iv, aad, plain, Buffer.alloc(100), 0, tag), /key/],
    ['wrong iv length', () => n.crypt(0, true, key, randomBytes(16), aad, plain, Buffer.alloc(100), 0, tag), /iv/],
    ['output too small', () => n.crypt(0, true, key, iv, aad, plain, Buffer.alloc(99), 0, tag), /output too small/],
    ['output too small after at', () => n.crypt(3, true, key, randomBytes(16), null, plain, Buffer.alloc(100), 1, null), /output too small/],
    ['CBC output without room for padding', () => n.crypt(2, true, key, randomBytes(16), null, plain, Buffer.alloc(100), 0, null), /output too small/],
    ['AEAD without a tag', () => n.crypt(0, true, key, iv, aad, plain, Buffer.alloc(100), 0, null), /tag/],
    ['short tag', () => n.crypt(1, true, key, iv, aad, plain, Buffer.alloc(100), 0, Buffer.alloc(8)), /tag/],
    ['unknown cipher', () => n.crypt(9 as NativeCipherId, true, key, iv, aad, plain, Buffer.alloc(100), 0, tag), /unknown cipher/],
    ['input not a Buffer', () => n.crypt(0, true, key, iv, aad, 'text' as unknown as Buffer, Buffer.alloc(100), 0, tag), /input/],
  ];
  for (const [what, call, re] of bad) assert.throws(call, (e: unknown) => e instanceof TypeError && re.test(e.message), what);
});

/** Run `fn` (source of an async function of the suites module and `data`) in a worker thread with `env`. */
async function inWorker<T>(env: NodeJS.ProcessEnv, fn: string, data: unknown): Promise<T> {
  const suites = new URL('../../src/protocol/suites.js', import.meta.url).href;
  const nat = new URL('../../src/protocol/native-cipher.js', import.meta.url).href;
  const w = new Worker(`const { parentPort, workerData } = require('node:worker_threads');
    Promise.all([import(${JSON.stringify(suites)}), import(${JSON.stringify(nat)})])
      .then(([suites, nat]) => (${fn})(suites, nat, workerData)).then((r) => parentPort.postMessage(r), (e) => parentPort.postMessage({ error: String(e) }));`,
  { eval: true, env, workerData: data });
  try {
    const r = await new Promise<T & { error?: string }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    if (r && typeof r === 'object' && 'error' in r && r.error) throw new Error(r.error);
    return r;
  } finally {
    await w.terminate();
  }
}

test('the native cipher loads in worker threads too (the crypto pool runs there)', async (t) => {
  if (!native(t)) return;
  const impl = await inWorker(process.env, '(suites, nat) => nat.cipherImplementation', null);
  assert.deepEqual(impl, cipherImplementation);
});

const SUITES = ['aes-gcm', 'chacha20-poly1305', 'aes-cbc+hmac-sha256', 'aes-ctr+hmac-sha512', 'none+hmac-blake2b512', 'none+sha256', 'none'];

test('a node:crypto peer (DST_NATIVE_CIPHER=0) and a native peer open each other\'s frames and refuse altered ones, suite by suite', async (t) => {
  if (!native(t)) return;
  const enc = randomBytes(32), mac = randomBytes(64);
  const header = randomBytes(48);
  const frames = SUITES.flatMap((name) => [0, 1, 4095, 4096, 65_537].map((len) => ({ name, seq: len + 3, plain: randomBytes(len) })));
  // Sealed here (natively); the worker, on node:crypto, opens these and seals every frame itself.
  const sealedHere = frames.map((f) => ({ name: f.name, seq: f.seq, ...seal(suiteByName(f.name), { enc, mac }, f.seq, header, f.plain) }));
  const back = await inWorker<{ impl: unknown; sealed: { payload: Uint8Array; tag: Uint8Array }[]; opened: Uint8Array[]; refused: string[] }>(
    { ...process.env, DST_NATIVE_CIPHER: '0' },
    `(suites, nat, d) => {
      const keys = { enc: Buffer.from(d.enc), mac: Buffer.from(d.mac) }, header = Buffer.from(d.header);
      const sealed = d.frames.map((f) => suites.seal(suites.suiteByName(f.name), keys, f.seq, header, Buffer.from(f.plain)));
      const opened = d.sealedHere.map((f) => suites.open(suites.suiteByName(f.name), keys, f.seq, header, Buffer.from(f.payload), Buffer.from(f.tag)));
      // and refuses them with a flipped tag bit (suites with a tag)
      const refused = d.sealedHere.map((f) => {
        if (f.tag.length === 0) return 'no tag';
        const tag = Buffer.from(f.tag); tag[0] ^= 1;
        try { suites.open(suites.suiteByName(f.name), keys, f.seq, header, Buffer.from(f.payload), tag); return 'opened'; } catch (e) { return e.code; }
      });
      return { impl: nat.cipherImplementation, sealed, opened, refused };
    }`,
    { enc, mac, header, frames, sealedHere });
  assert.deepEqual(back.impl, { kind: 'node', detail: 'DST_NATIVE_CIPHER=0' }, 'the worker really ran node:crypto');
  frames.forEach((f, i) => {
    const what = `${f.name}, ${f.plain.length} bytes`;
    assert.ok(Buffer.from(back.opened[i]!).equals(f.plain), `${what}: node:crypto opened the native seal`);
    assert.equal(back.refused[i], f.name === 'none' ? 'no tag' : 'DST_ERR_MAC', `${what}: node:crypto refused a flipped tag bit`);
    const s = back.sealed[i]!;
    const opened = open(suiteByName(f.name), { enc, mac }, f.seq, header, Buffer.from(s.payload), Buffer.from(s.tag));
    assert.ok(opened.equals(f.plain), `${what}: native opened the node:crypto seal`);
  });
});
