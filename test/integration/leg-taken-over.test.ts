// A remote Leg with a mirror claim, over a real export: once a newer session of the mirror holds
// the export, the leg's next write gets EPERM — that write completes exactly once, with EPERM,
// and the leg is failed with reason taken-over when it does; a leg that offers the older session
// afterwards is refused at the HELLO, fails with taken-over and never tries again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CryptoPool } from '../../src/engine/crypto-pool.js';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { DEFAULT_CRYPTO, DEFAULT_LIMITS, DEFAULT_POLICY } from '../../src/engine/types.js';
import { BACKOFF_CAP_MS, Leg, type LegPhase } from '../../src/engine/remote/leg.js';
import type { LegRequest } from '../../src/engine/remote/target.js';
import net from 'node:net';
import { dir, fixture, RawClient } from '../helpers/export-fixture.js';

const uuid = Buffer.alloc(16, 0x5a);

test('leg: a claim taken over by a newer session fails the leg with taken-over, without retrying', { timeout: 20_000 }, async (t) => {
  const f = await fixture();
  t.after(() => f.stop());
  const cryptoPool = new CryptoPool(1);
  t.after(() => cryptoPool.close());
  const clock = new FakeClock();

  /** A leg whose phase changes resolve waiters (no polling). */
  function makeLeg(session: bigint): { leg: Leg; phase: (p: LegPhase) => Promise<void>; connects: () => number } {
    const waiters: { p: LegPhase; resolve: () => void }[] = [];
    let connects = 0;
    const leg: Leg = new Leg({
      ctx: { clock, log: silentLogger, events: { emit: () => {} }, runtimeDir: dir, stateDir: join(dir, 'leg-state'),
        limits: { ...DEFAULT_LIMITS }, cryptoPool },
      log: silentLogger,
      remote: () => `127.0.0.1:${f.port}`,
      exportName: () => '',
      sizeLimit: () => null,
      policy: () => DEFAULT_POLICY,
      crypto: () => DEFAULT_CRYPTO,
      emit: () => {},
      phaseChanged: () => {
        for (const w of waiters.filter((x) => x.p === leg.phase)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      },
      firstHello: (conn, sessionHex) => leg.becomeReady(conn, sessionHex),
      socketFactory: (host, port) => {
        connects++;
        return net.connect({ host, port });
      },
    });
    leg.setClaim({ uuid, session });
    t.after(() => { leg.closeLink(true); leg.closeTable(); });
    return { leg, connects: () => connects, phase: (p) => (leg.phase === p ? Promise.resolve() : new Promise((resolve) => waiters.push({ p, resolve }))) };
  }
  const write: LegRequest = { op: 'write', offset: 0, length: 512, payload: Buffer.alloc(512, 7), fua: false };

  const a = makeLeg(3n);
  a.leg.start();
  await a.phase('ready');
  const first = await new Promise<string | null>((resolve) => a.leg.submit(write, (errno) => resolve(errno)));
  assert.equal(first, null, 'alone, the leg writes');

  const newer = await RawClient.connect(f.port);
  t.after(() => newer.close());
  assert.equal((await newer.hello({ mirrorClaim: { uuid, session: 4n } })).status, 0);

  const calls: { errno: string | null; phase: LegPhase; reason: string | null }[] = [];
  await new Promise<void>((resolve) => a.leg.submit(write, (errno) => {
    calls.push({ errno, phase: a.leg.phase, reason: a.leg.reason });
    resolve();
  }));
  assert.deepEqual(calls, [{ errno: 'EPERM', phase: 'failed', reason: 'taken-over' }],
    'the write completes once, with EPERM, and the leg is already failed when it does');
  clock.advance(BACKOFF_CAP_MS * 2); // past any deadline or backoff
  assert.equal(calls.length, 1, 'never completed again');
  assert.equal(a.leg.phase, 'failed');

  const b = makeLeg(3n);
  b.leg.start();
  await b.phase('failed');
  assert.equal(b.leg.reason, 'taken-over', 'the older session is refused at the HELLO');
  assert.equal(b.connects(), 1);
  clock.advance(BACKOFF_CAP_MS * 2);
  assert.equal(b.leg.phase, 'failed');
  assert.equal(b.connects(), 1, 'no second attempt');
});
