// The worker pool seals and opens large frames exactly as the main thread does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CryptoPool, SMALL_FRAME } from '../../src/engine/crypto-pool.js';
import { deriveSessionKeys, open, sealedLength, suiteByName } from '../../src/protocol/suites.js';
import { Cmd, Op, encodeHeader } from '../../src/protocol/wire.js';
import { allocPayload } from '../../src/engine/io/payload-pool.js';

test('large frames go through workers and open on the main thread; tampering is refused by the worker', async (t) => {
  const pool = new CryptoPool(2);
  t.after(() => pool.close());
  for (const name of ['aes-gcm', 'aes-cbc+hmac-sha256', 'chacha20-poly1305']) {
    const suite = suiteByName(name);
    const keys = deriveSessionKeys(suite, randomBytes(32), randomBytes(32), randomBytes(32));
    const frames = [SMALL_FRAME - 1, SMALL_FRAME, 1 << 20].map((len, seq) => {
      const plain = randomBytes(len);
      const header = encodeHeader({ cmd: Cmd.IO, op: Op.WRITE, flags: 0, status: 0, length: len, id: seq, offset: 0, ackedBelow: 0,
        payloadLength: sealedLength(suite, len), tagLength: suite.tagLength });
      return { plain, header, seq };
    });
    const sealed = await Promise.all(frames.map((f) => pool.seal(suite, keys.clientToServer, f.seq, f.header, f.plain)));
    sealed.forEach((s, i) => {
      const f = frames[i]!;
      assert.deepEqual(open(suite, keys.clientToServer, f.seq, f.header, s.payload, s.tag), f.plain, name);
    });
    const big = frames[2]!;
    const opened = await pool.open(suite, keys.clientToServer, big.seq, big.header, sealed[2]!.payload, sealed[2]!.tag);
    assert.deepEqual(opened, big.plain);
    const bad = Buffer.from(sealed[2]!.payload);
    bad[100]! ^= 0x10;
    await assert.rejects(pool.open(suite, keys.clientToServer, big.seq, big.header, bad, sealed[2]!.tag), { code: 'DST_ERR_MAC' });
  }
});

test('frames reach the workers without a copy: pooled buffers are shared, the result lands in a pooled buffer', async (t) => {
  const pool = new CryptoPool(1);
  t.after(() => pool.close());
  const len = 1 << 20;
  const header = (suite: ReturnType<typeof suiteByName>): Buffer => encodeHeader({ cmd: Cmd.IO, op: Op.WRITE, flags: 0, status: 0,
    length: len, id: 1, offset: 0, ackedBelow: 0, payloadLength: sealedLength(suite, len), tagLength: suite.tagLength });
  const suite = suiteByName('aes-gcm');
  const keys = deriveSessionKeys(suite, randomBytes(32), randomBytes(32), randomBytes(32)).clientToServer;
  const pooled = allocPayload(len);
  randomBytes(len).copy(pooled);
  const unpooled = Buffer.concat([randomBytes(100), pooled, randomBytes(100)]).subarray(100, 100 + len);
  for (const plain of [pooled, unpooled]) {
    const before = Buffer.from(plain);
    const h = header(suite);
    const sealed = await pool.seal(suite, keys, 0, h, plain);
    assert.ok(sealed.payload.buffer instanceof SharedArrayBuffer, 'the sealed payload is a payload-pool buffer');
    assert.deepEqual(plain, before, 'the input is read, never written');
    const opened = await pool.open(suite, keys, 0, h, sealed.payload, sealed.tag);
    assert.ok(opened.buffer instanceof SharedArrayBuffer);
    assert.deepEqual(opened, before);
  }
  const mac = suiteByName('none+hmac-sha256');
  const macKeys = deriveSessionKeys(mac, randomBytes(32), randomBytes(32), randomBytes(32)).clientToServer;
  const sealed = await pool.seal(mac, macKeys, 0, header(mac), pooled);
  assert.equal(sealed.payload, pooled, 'a suite without a cipher sends the payload itself');
  assert.equal(await pool.open(mac, macKeys, 0, header(mac), pooled, sealed.tag), pooled);
});
