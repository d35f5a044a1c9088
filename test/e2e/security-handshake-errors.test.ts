// Handshakes that must fail, and fail clearly on both sides without moving data or storming:
//  - wrong key (both aes-gcm, different keys) → reason auth-failed, "authentication failed" logged
//    by both engines, an auth-failed event;
//  - suite mismatch (aes-gcm vs chacha20-poly1305) → reason suite-mismatch, both engines' logs name
//    both suites;
//  - crypto on one side only (either side) → refused, both logs say the other side has no crypto.
// Every time: the remote never gets ready, its NBD socket never serves, no `connected` event on either
// side, the export reads/writes nothing, and reconnects back off (counted at the fault proxy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import type { EventStream } from '../helpers/engine.js';
import { makeKeyFile, type KeyFile } from '../helpers/keys.js';
import { tmpDir } from '../helpers/tmp.js';
import { sleep, waitFor } from '../helpers/tools.js';
import { proxyStatus } from '../helpers/wire-tap.js';

interface Case {
  title: string;
  exportCrypto(k1: KeyFile, k2: KeyFile): string[];
  remoteCrypto(k1: KeyFile, k2: KeyFile): string[];
  reason: string | readonly string[];
  /** each engine's log must match all of these */
  logs: RegExp[];
  /** an auth-failed event must be seen (on either engine) */
  authEvent: boolean;
}

const gcm = (k: KeyFile): string[] => ['--cipher', 'aes-gcm', '--cipher-key-file', k.path];
const ONE_SIDE = /on the (export|client|remote|server|other side) only|one side|other side|only (one|on)|peer (has|uses) no|not configured|no (key|crypto|cipher)|without (a key|crypto)|requires? (a key|crypto|encryption)|plaintext|unencrypted/i;

const CASES: Case[] = [
  {
    title: 'wrong key', exportCrypto: (k1) => gcm(k1), remoteCrypto: (_k1, k2) => gcm(k2),
    reason: 'auth-failed', logs: [/authentication failed/i], authEvent: true,
  },
  {
    title: 'suite mismatch', exportCrypto: (k1) => gcm(k1), remoteCrypto: (k1) => ['--cipher', 'chacha20-poly1305', '--cipher-key-file', k1.path],
    reason: 'suite-mismatch', logs: [/suite/i, /aes-gcm[^\n]*chacha20-poly1305|chacha20-poly1305[^\n]*aes-gcm/], authEvent: false,
  },
  {
    title: 'key on the export only', exportCrypto: (k1) => gcm(k1), remoteCrypto: () => [],
    reason: ['suite-mismatch', 'auth-failed'], logs: [ONE_SIDE], authEvent: false,
  },
  {
    title: 'key on the remote only', exportCrypto: () => [], remoteCrypto: (k1) => gcm(k1),
    reason: ['suite-mismatch', 'auth-failed'], logs: [ONE_SIDE], authEvent: false,
  },
];

for (const c of CASES) {
  test(`handshake error, ${c.title}: clear errors on both sides, no data moved, backoff`, async (t) => {
    const dir = tmpDir(t, 'dst-hs-');
    const k1 = makeKeyFile(dir, 'k1', 'hex');
    const k2 = makeKeyFile(dir, 'k2', 'hex');
    let expEvents!: EventStream;
    let remEvents!: EventStream;
    const t0 = Date.now();
    const pair = await startPair(t, {
      size: 4 * 1024 * 1024, viaProxy: true, waitReady: false,
      exportCrypto: c.exportCrypto(k1, k2), remoteCrypto: c.remoteCrypto(k1, k2),
      beforeNodes: async (exp, rem) => {
        expEvents = await exp.events();
        remEvents = await rem.events();
      },
    });
    const reasons = typeof c.reason === 'string' ? [c.reason] : c.reason;
    const show = await waitFor(`remote in backoff with reason ${reasons.join('|')}`, async () => {
      const s = await pair.show();
      return s.state === 'backoff' && s.reason !== null && reasons.includes(s.reason) ? s : null;
    }, 15_000).catch(async (e: Error) => {
      throw new Error(`${e.message}; last show ${JSON.stringify(await pair.show())}\n--- remote log ---\n${pair.rem.log().slice(-3000)}\n--- export log ---\n${pair.exp.log().slice(-3000)}`);
    });
    assert.equal(show.nbd, null, 'the NBD socket does not serve');
    assert.equal(show.permissions, null, 'nothing was granted');

    // Backoff: over a few seconds only a handful of attempts (1 s doubling), never a storm.
    await sleep(Math.max(0, 4500 - (Date.now() - t0)));
    const attempts = (await proxyStatus(pair.proxy!)).accepted;
    const seconds = (Date.now() - t0) / 1000;
    assert.ok(attempts >= 1, 'the remote tried at least once');
    assert.ok(attempts <= 6, `${attempts} connection attempts in ${seconds.toFixed(1)} s: backoff expected (1 s doubling)`);
    const after = await pair.show();
    assert.notEqual(after.state, 'ready');
    assert.ok(after.reason !== null && reasons.includes(after.reason), `reason stays ${reasons.join('|')} (got ${after.reason})`);

    // No data moved.
    assert.equal(existsSync(join(pair.rem.runDir, 'nbd', `${pair.remoteName}.sock`)), false, 'no NBD socket file for a node that never got ready');
    const expStats = (await pair.exp.show(pair.exportName)).stats;
    assert.equal(expStats.bytesRead + expStats.bytesWritten, 0, 'the export moved no data');
    assert.equal(expStats.completed, 0, 'the export ran no request');
    for (const [side, ev] of [['export', expEvents], ['remote', remEvents]] as const) {
      assert.ok(!ev.records.some((r) => r.event === 'connected'), `${side}: no connected event for a failed handshake: ${JSON.stringify(ev.records.filter((r) => r.event === 'connected'))}`);
      assert.ok(!ev.records.some((r) => r.event === 'state-changed' && r.to === 'ready'), `${side}: never ready`);
    }
    // The remote's backoff is announced with its reason.
    assert.ok(remEvents.records.some((r) => r.event === 'state-changed' && r.to === 'backoff' && r.reason !== undefined && r.reason !== null && reasons.includes(r.reason)),
      `remote: state-changed to backoff with reason ${reasons.join('|')}; events: ${JSON.stringify(remEvents.records.filter((r) => r.event !== 'subscribed'))}`);
    if (c.authEvent) {
      assert.ok([...expEvents.records, ...remEvents.records].some((r) => r.event === 'auth-failed'),
        `an auth-failed event; export events ${JSON.stringify(expEvents.records)}; remote events ${JSON.stringify(remEvents.records)}`);
    }

    // Clear errors in both engines' logs.
    for (const [side, log] of [['export', pair.exp.log()], ['remote', pair.rem.log()]] as const) {
      for (const re of c.logs) assert.match(log, re, `${side} log names the problem (${re})\n--- ${side} log tail ---\n${log.slice(-2500)}`);
    }
  });
}
