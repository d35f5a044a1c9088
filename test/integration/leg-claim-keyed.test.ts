// With a keyed suite the claim moves only once the client's AUTH proof checks out: a peer that
// sends a HELLO with a high claim but never proves the key leaves the claim where it was, and a
// Leg with the key and a newer claim then takes the mirror over (the older leg goes taken-over at
// its next write).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { CryptoPool } from '../../src/engine/crypto-pool.js';
import { realClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { DEFAULT_CRYPTO, DEFAULT_LIMITS, DEFAULT_POLICY, type CryptoConfig } from '../../src/engine/types.js';
import { Leg, type LegPhase } from '../../src/engine/remote/leg.js';
import type { LegRequest } from '../../src/engine/remote/target.js';
import { Cmd, encodeHello } from '../../src/protocol/wire.js';
import { dir, fixture, RawClient } from '../helpers/export-fixture.js';

const uuid = Buffer.alloc(16, 0x77);
const KEY_FILE = join(dir, 'claims.key');
writeFileSync(KEY_FILE, randomBytes(32).toString('hex'), { mode: 0o600 });
const GCM: CryptoConfig = { ...DEFAULT_CRYPTO, cipher: 'aes-gcm', cipherKeyFile: KEY_FILE };

test('leg: an unauthenticated HELLO never moves a mirror claim (keyed suite)', { timeout: 20_000 }, async (t) => {
  const f = await fixture({ start: false });
  f.holder.config = { ...f.holder.config, crypto: GCM };
  await f.rt.start();
  t.after(() => f.stop());
  const port = Number(/:(\d+)$/.exec(f.rt.show().listen!)![1]);
  const cryptoPool = new CryptoPool(1);
  t.after(() => cryptoPool.close());

  function makeLeg(session: bigint): { leg: Leg; phase: (p: LegPhase) => Promise<void> } {
    const waiters: { p: LegPhase; resolve: () => void }[] = [];
    const leg: Leg = new Leg({
      ctx: { clock: realClock, log: silentLogger, events: { emit: () => {} }, runtimeDir: dir, stateDir: join(dir, 'leg-state'),
        limits: { ...DEFAULT_LIMITS }, cryptoPool },
      log: silentLogger,
      remote: () => `127.0.0.1:${port}`,
      exportName: () => '',
      sizeLimit: () => null,
      policy: () => DEFAULT_POLICY,
      crypto: () => GCM,
      emit: () => {},
      phaseChanged: () => {
        for (const w of waiters.filter((x) => x.p === leg.phase)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      },
      firstHello: (conn, sessionHex) => leg.becomeReady(conn, sessionHex),
    });
    leg.setClaim({ uuid, session });
    t.after(() => { leg.closeLink(true); leg.closeTable(); });
    return { leg, phase: (p) => (leg.phase === p ? Promise.resolve() : new Promise((resolve) => waiters.push({ p, resolve }))) };
  }
  const write: LegRequest = { op: 'write', offset: 0, length: 512, payload: Buffer.alloc(512, 9), fua: false };
  const writeOn = (leg: Leg): Promise<string | null> => new Promise((resolve) => leg.submit(write, (errno) => resolve(errno)));

  // HELLO with claim 100, HELLO_REPLY comes (the export waits for AUTH), then the peer goes away
  const intruder = await RawClient.connect(port);
  intruder.send({ cmd: Cmd.HELLO, payload: encodeHello({
    version: 2, exportName: '', sessionId: randomBytes(16), access: 3, suite: 'aes-gcm', keyId: null, nonce: randomBytes(32),
    mirrorClaim: { uuid, session: 100n },
  }) });
  assert.equal((await intruder.take((x) => x.cmd === Cmd.HELLO_REPLY)).status, 0, 'keyed: HELLO_REPLY, AUTH awaited');
  intruder.close();

  const a = makeLeg(1n);
  a.leg.start();
  await a.phase('ready');
  assert.equal(await writeOn(a.leg), null, 'claim 1 still writes: 100 was never proven');

  const b = makeLeg(2n);
  b.leg.start();
  await b.phase('ready');
  assert.equal(await writeOn(b.leg), null);
  assert.equal(await writeOn(a.leg), 'EPERM', 'the proven newer claim took the mirror over');
  assert.equal(a.leg.phase, 'failed');
  assert.equal(a.leg.reason, 'taken-over');
});
