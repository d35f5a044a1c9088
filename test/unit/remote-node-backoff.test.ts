// The remote node's reconnect schedule: every failed attempt backs off 1, 2, 4 … 30 s, a HELLO
// resets it, a policy change re-arms it; waitReady. FakeClock and fake sockets.
import { CryptoPool } from '../../src/engine/crypto-pool.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import {
  DEFAULT_CHUNK, DEFAULT_REGION, DEFAULT_CRYPTO, DEFAULT_LIMITS, DEFAULT_POLICY, type EventFields, type NodeContext, type Policy, type RemoteConfig,
} from '../../src/engine/types.js';
import { createRemoteNode } from '../../src/engine/remote/remote-node.js';
import { BACKOFF_CAP_MS, backoffDelay } from '../../src/engine/remote/leg.js';
import type { NbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import { flush, FakeSocket, exportBehaviour } from '../helpers/remote-conn.js';

test('backoff schedule: reconnect-delay doubling to a 30 s cap', () => {
  const p = { reconnectDelayMs: 1000 };
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 50].map((n) => backoffDelay(p, n)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(BACKOFF_CAP_MS, 30_000);
  assert.equal(backoffDelay({ reconnectDelayMs: 50 }, 2), 200);
});

function makeNode(over: Partial<Policy> = {}) {
  const clock = new FakeClock();
  const config: RemoteConfig = {
    role: 'remote', name: 'vol', size: null, autostart: false, policy: { ...DEFAULT_POLICY, ...over },
    crypto: { ...DEFAULT_CRYPTO }, layout: 'single', legs: [{ remote: '127.0.0.1:10825', export: null }], chunk: DEFAULT_CHUNK, region: DEFAULT_REGION, nbdListen: null,
  };
  const events: { event: string; fields: EventFields }[] = [];
  const ctx: NodeContext = { clock, log: silentLogger, events: { emit: (_n, event, fields) => events.push({ event, fields: fields ?? {} }) },
    runtimeDir: '/nonexistent', stateDir: '/nonexistent', limits: DEFAULT_LIMITS, cryptoPool: new CryptoPool(1) };
  const attempts: { at: number; sock: FakeSocket }[] = [];
  const mode = { accept: false };
  const node = createRemoteNode({ config }, ctx, {
    socketFactory: () => {
      const sock = new FakeSocket();
      attempts.push({ at: clock.now(), sock });
      if (mode.accept) {
        sock.onFrame = exportBehaviour({ pong: true });
        queueMicrotask(() => sock.emit('connect'));
      } else {
        queueMicrotask(() => {
          sock.emit('error', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:10825'), { code: 'ECONNREFUSED' }));
          sock.emit('close');
        });
      }
      return sock;
    },
    startEndpoint: async (o) => ({ socketPath: o.socketPath, tcpAddress: null, uri: `nbd+unix:///?socket=${o.socketPath}`,
      connections: 0, close: async () => {} }) as NbdEndpoint,
  });
  return { clock, config, node, events, attempts, mode };
}

test('node: every failed attempt (the first included) → backoff 1, 2, 4, ... 30 s; reset by a HELLO', async () => {
  const n = makeNode({ reconnectDelayMs: 1000 });
  const started = n.node.start();
  assert.equal(n.node.state, 'connecting');
  await started;
  await flush();
  assert.equal(n.node.state, 'backoff');
  assert.equal(n.node.reason, 'link');
  for (let i = 0; i < 7; i++) {
    const last = n.attempts.at(-1)!.at;
    const expect = Math.min(30_000, 1000 * 2 ** i);
    n.clock.advance(expect - 1);
    assert.equal(n.attempts.at(-1)!.at, last, `no attempt before ${expect} ms`);
    n.clock.advance(1);
    assert.equal(n.attempts.at(-1)!.at - last, expect);
    await flush();
  }
  assert.deepEqual(n.attempts.slice(1).map((a, i) => a.at - n.attempts[i]!.at), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.equal(n.node.state, 'backoff'); // attempts in backoff keep the state
  // the export comes back
  n.mode.accept = true;
  n.clock.advance(30_000);
  await flush(); await flush();
  assert.equal(n.node.state, 'ready');
  assert.equal(n.node.show().size, 1 << 20);
  // link lost: the schedule starts again from reconnect-delay
  n.mode.accept = false;
  const before = n.attempts.length;
  n.attempts.at(-1)!.sock.emit('close');
  assert.equal(n.node.state, 'backoff');
  n.clock.advance(999);
  assert.equal(n.attempts.length, before);
  n.clock.advance(1);
  assert.equal(n.attempts.length, before + 1);
  assert.deepEqual(n.events.filter((e) => e.event === 'state-changed').slice(0, 3).map((e) => [e.fields.from, e.fields.to, e.fields.reason]),
    [['configured', 'connecting', null], ['connecting', 'backoff', 'link'], ['backoff', 'ready', null]]);
  await n.node.stop({ force: true });
  assert.equal(n.node.state, 'configured');
});

test('node: a policy change re-arms a backoff already running', async () => {
  const n = makeNode({ reconnectDelayMs: 1000 });
  await n.node.start();
  await flush();                                   // fail #1 → 1 s
  n.clock.advance(1000); await flush();            // fail #2 → 2 s
  n.clock.advance(2000); await flush();            // fail #3 → 4 s, started at t3
  const t3 = n.attempts.at(-1)!.at;
  n.clock.advance(1000);
  // shorter: 100 ms × 4 = 400 ms from t3, already past → next attempt at once
  n.config.policy = { ...n.config.policy, reconnectDelayMs: 100 };
  n.node.configChanged();
  n.clock.advance(0);
  assert.equal(n.attempts.at(-1)!.at, t3 + 1000);
  await flush();                                   // fail #4 → 100 × 8 = 800 ms
  const t4 = n.attempts.at(-1)!.at;
  n.clock.advance(100);
  // longer: 2 s × 8 = 16 s from t4
  n.config.policy = { ...n.config.policy, reconnectDelayMs: 2000 };
  n.node.configChanged();
  n.clock.advance(15_899);
  assert.equal(n.attempts.at(-1)!.at, t4);
  n.clock.advance(1);
  assert.equal(n.attempts.at(-1)!.at, t4 + 16_000);
  await n.node.stop({ force: true });
});

test('node: waitReady resolves when ready, or with the state after ms', async () => {
  const n = makeNode({ reconnectDelayMs: 1000 });
  await n.node.start();
  const early = n.node.waitReady(500);
  await flush();
  n.clock.advance(500);
  assert.equal(await early, 'backoff');
  n.mode.accept = true;
  const later = n.node.waitReady(10_000);
  n.clock.advance(500);
  await flush(); await flush();
  assert.equal(await later, 'ready');
  assert.equal(await n.node.waitReady(1), 'ready');
  const show = n.node.show();
  assert.equal(show.sessionId!.length, 32);
  assert.deepEqual(show.nbd, { socket: '/nonexistent/nbd/vol.sock', uri: 'nbd+unix:///?socket=/nonexistent/nbd/vol.sock', listen: null });
  assert.equal(show.permissions, 'rw');
  assert.equal(n.events.filter((e) => e.event === 'connected')[0]!.fields.sessionId, show.sessionId);
  await n.node.stop({ force: false });
  assert.equal(n.node.show().nbd, null);
  assert.equal(n.node.state, 'configured');
});
