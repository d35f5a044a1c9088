// Every suite seals and opens; any flipped bit, reordering or replay is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  suiteByName, makeSuite, deriveSessionKeys, seal, open, sealedLength, authProof, proofsEqual,
  parseKeyMaterial, parseCipherName, parseHashName, keyId,
} from '../../src/protocol/suites.js';
import { Cmd, Op, encodeHeader } from '../../src/protocol/wire.js';

const SUITES = [
  'aes-gcm', 'chacha20-poly1305',
  ...['sha256', 'sha512', 'blake2b512'].flatMap((h) => [`aes-cbc+hmac-${h}`, `aes-ctr+hmac-${h}`, `none+hmac-${h}`, `none+${h}`]),
  'none',
];

function frame(name: string, plain: Buffer, seq: number) {
  const suite = suiteByName(name);
  const keys = deriveSessionKeys(suite, randomBytes(64), randomBytes(32), randomBytes(32));
  const header = encodeHeader({ cmd: Cmd.IO, op: Op.WRITE, flags: 0, status: 0, length: plain.length, id: 7, offset: 4096,
    ackedBelow: 1, payloadLength: sealedLength(suite, plain.length), tagLength: suite.tagLength });
  const sealed = seal(suite, keys.clientToServer, seq, header, plain);
  return { suite, keys, header, sealed };
}

for (const name of SUITES) {
  test(`${name}: round-trips, and refuses altered header, payload, tag, and wrong sequence`, () => {
    const plain = Buffer.from('known plaintext pattern '.repeat(50));
    const { suite, keys, header, sealed } = frame(name, plain, 5);
    assert.equal(suiteByName(suite.name).name, name);
    assert.equal(sealed.payload.length, sealedLength(suite, plain.length));
    assert.equal(sealed.tag.length, suite.tagLength);
    assert.deepEqual(open(suite, keys.clientToServer, 5, header, sealed.payload, sealed.tag), plain);
    if (suite.cipher !== 'none') assert.equal(sealed.payload.includes(Buffer.from('known plaintext')), false);
    if (name === 'none') return; // nothing to authenticate
    const flip = (b: Buffer, i: number): Buffer => { const c = Buffer.from(b); c[i]! ^= 1; return c; };
    for (const i of [0, 5, 16, 24, 40]) assert.throws(() => open(suite, keys.clientToServer, 5, flip(header, i), sealed.payload, sealed.tag), { code: 'DST_ERR_MAC' });
    assert.throws(() => open(suite, keys.clientToServer, 5, header, flip(sealed.payload, 3), sealed.tag), { code: 'DST_ERR_MAC' });
    assert.throws(() => open(suite, keys.clientToServer, 5, header, sealed.payload, flip(sealed.tag, 0)), { code: 'DST_ERR_MAC' });
    assert.throws(() => open(suite, keys.clientToServer, 6, header, sealed.payload, sealed.tag), { code: 'DST_ERR_MAC' });
    if (suite.needsKey) assert.throws(() => open(suite, keys.serverToClient, 5, header, sealed.payload, sealed.tag), { code: 'DST_ERR_MAC' });
  });
}

test('empty payloads seal and open (flush, acks)', () => {
  for (const name of SUITES) {
    const { suite, keys, header, sealed } = frame(name, Buffer.alloc(0), 0);
    assert.equal(open(suite, keys.clientToServer, 0, header, sealed.payload, sealed.tag).length, 0, name);
  }
});

test('suite construction: AEAD with a hash, CBC/CTR without a keyed hash are refused', () => {
  assert.throws(() => makeSuite('aes-gcm', 'sha256', true), /authenticates by itself/);
  assert.throws(() => makeSuite('aes-cbc', 'sha256', false), /needs a keyed hash/);
  assert.throws(() => makeSuite('aes-ctr', 'none', false), /needs a keyed hash/);
  assert.equal(makeSuite('none', 'sha512', false).name, 'none+sha512');
  assert.throws(() => suiteByName('aes-cbc+sha256'), /unknown suite/);
  assert.equal(parseCipherName('cbc(aes)'), 'aes-cbc');
  assert.equal(parseCipherName('gcm(aes)'), 'aes-gcm');
  assert.deepEqual(parseHashName('hmac(sha256)'), { hash: 'sha256', hmac: true });
  assert.throws(() => parseCipherName('des'), /unknown cipher "des"/);
  assert.throws(() => parseHashName('md5'), /unknown hash "md5"/);
});

test('key proofs differ by role and by key; derivation is deterministic per nonce pair', () => {
  const suite = suiteByName('aes-gcm');
  const key = randomBytes(32);
  const [cn, sn] = [randomBytes(32), randomBytes(32)];
  const a = deriveSessionKeys(suite, key, cn, sn);
  const b = deriveSessionKeys(suite, key, cn, sn);
  const other = deriveSessionKeys(suite, randomBytes(32), cn, sn);
  const transcript = Buffer.from('hello transcript');
  assert.ok(proofsEqual(authProof(a.confirm, 'client', transcript), authProof(b.confirm, 'client', transcript)));
  assert.ok(!proofsEqual(authProof(a.confirm, 'client', transcript), authProof(a.confirm, 'server', transcript)));
  assert.ok(!proofsEqual(authProof(a.confirm, 'client', transcript), authProof(other.confirm, 'client', transcript)));
  assert.notDeepEqual(a.clientToServer.enc, a.serverToClient.enc);
});

test('key files: hex, base64 and raw forms; too short refused naming the file', () => {
  const hex = 'ab'.repeat(32);
  assert.deepEqual(parseKeyMaterial(Buffer.from(` ${hex}\n`), 'k'), Buffer.from(hex, 'hex'));
  const raw = randomBytes(40);
  assert.deepEqual(parseKeyMaterial(Buffer.from(`base64:${raw.toString('base64')}\n`), 'k'), raw);
  const rawText = Buffer.from(' raw key bytes that are long enough!! \n');
  assert.deepEqual(parseKeyMaterial(rawText, 'k'), rawText); // raw bytes are never trimmed
  assert.throws(() => parseKeyMaterial(Buffer.from('short'), '/etc/dst/k'), /key file \/etc\/dst\/k: key is 5 bytes/);
  assert.equal(keyId(raw).length, 8);
});
