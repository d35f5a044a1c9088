// A remote Leg over a real export node: it learns the export's features at the handshake
// (`digests`), and a 'digest' LegRequest goes through the transaction table and the connection as
// Op.DIGEST and completes with the export's 32-byte SHA-256 of the range as its data, counted
// neither as bytes read nor written. An out-of-range digest fails with EINVAL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CryptoPool } from '../../src/engine/crypto-pool.js';
import { realClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { DEFAULT_CRYPTO, DEFAULT_LIMITS, DEFAULT_POLICY } from '../../src/engine/types.js';
import { Leg } from '../../src/engine/remote/leg.js';
import type { LegRequest, TxnDone } from '../../src/engine/remote/target.js';
import { dir, fixture, makeDisk, until } from '../helpers/export-fixture.js';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

test('leg: a digest request round-trips through a real export as its 32-byte SHA-256', async (t) => {
  const disk = await makeDisk(4 * MiB);
  const bytes = randomBytes(4 * MiB);
  await writeFile(disk, bytes);
  const f = await fixture({ disk });
  t.after(() => f.stop());
  const cryptoPool = new CryptoPool(1);
  t.after(() => cryptoPool.close());

  const leg: Leg = new Leg({
    ctx: { clock: realClock, log: silentLogger, events: { emit: () => {} }, runtimeDir: dir, stateDir: join(dir, 'leg-state'),
      limits: { ...DEFAULT_LIMITS }, cryptoPool },
    log: silentLogger,
    remote: () => `127.0.0.1:${f.port}`,
    exportName: () => '',
    sizeLimit: () => null,
    policy: () => DEFAULT_POLICY,
    crypto: () => DEFAULT_CRYPTO,
    emit: () => {},
    phaseChanged: () => {},
    firstHello: (conn, sessionHex) => leg.becomeReady(conn, sessionHex),
  });
  assert.equal(leg.digests, false, 'nothing learned before the handshake');
  leg.start();
  t.after(() => { leg.closeLink(true); leg.closeTable(); });
  await until(() => leg.phase === 'ready', 5000);
  assert.equal(leg.digests, true, 'the export advertised DIGEST');

  const submit = (req: LegRequest): Promise<{ errno: string | null; data: Buffer | null }> =>
    new Promise((resolve) => {
      const done: TxnDone = (errno, data) => resolve({ errno, data });
      leg.submit(req, done);
    });
  const digest = (offset: number, length: number): LegRequest => ({ op: 'digest', offset, length, payload: null, fua: false });

  const file = await readFile(disk);
  for (const [offset, length] of [[0, 4 * MiB], [MiB + 3, 2 * MiB + 5], [4 * MiB - 10, 10]] as const) {
    const r = await submit(digest(offset, length));
    assert.equal(r.errno, null, `digest ${offset}+${length}`);
    assert.deepEqual(r.data, sha256(file.subarray(offset, offset + length)), `digest ${offset}+${length}`);
  }
  const out = await submit(digest(4 * MiB - 512, 1024));
  assert.equal(out.errno, 'EINVAL', 'past the end of the export');
  assert.equal(out.data, null);

  const st = leg.stats();
  assert.equal(st.bytesRead, 0, 'digests are not bytes read');
  assert.equal(st.bytesWritten, 0);
  assert.equal(st.completed, 3);
  assert.equal(st.failed, 1);
});
