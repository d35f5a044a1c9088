// The worker pool seals and opens large frames exactly as the main thread does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CryptoPool, SMALL_FRAME } from '../../src/engine/crypto-pool.js';
import { deriveSessionKeys, open, sealedLength, suiteByName } from '../../src/protocol/suites.js';
import { Cmd, Op, encodeHeader } from '../../src/protocol/wire.js';

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
