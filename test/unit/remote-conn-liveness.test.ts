// The remote connection's liveness (DESIGN §8): PING windows idle and with work outstanding,
// dead detection, and a slow export that answers PINGs never declared dead. On a FakeClock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd } from '../../src/protocol/wire.js';
import { ConnState } from '../../src/engine/remote/conn-state.js';
import { flush, exportBehaviour, readyConn } from '../helpers/remote-conn.js';

type Conn = Awaited<ReturnType<typeof readyConn>>;

/** Advance the clock step by step, checking how many PINGs went out after each step. */
function pingsAfter(c: Conn, steps: [ms: number, pings: number][]): void {
  for (const [ms, pings] of steps) {
    c.clock.advance(ms);
    assert.equal(c.sock.count(Cmd.PING), pings);
  }
}

/** The link is still ready 1 ms before `ms` from now, and closed at `ms`. */
function deadAfter(c: Conn, ms: number): void {
  c.clock.advance(ms - 1);
  assert.equal(c.conn.state, ConnState.READY);
  c.clock.advance(1);
  assert.equal(c.conn.state, ConnState.CLOSED);
}

test('idle: PING after ping-interval of silence; dead after 3 missed pongs', async () => {
  const c = await readyConn({ pingIntervalMs: 1000, resendTimeoutMs: 5000 });
  pingsAfter(c, [[999, 0], [1, 1], [1000, 2], [1000, 3]]);
  deadAfter(c, 1000);
  assert.match(c.closes[0]!.detail, /3 pings unanswered/);
  assert.equal(c.closes[0]!.wasReady, true);
});

test('idle with pongs: alive forever, one PING per ping-interval', async () => {
  const c = await readyConn({ pingIntervalMs: 1000, resendTimeoutMs: 5000 });
  c.sock.onFrame = exportBehaviour({ pong: true });
  for (let t = 0; t < 60_000; t += 100) { c.clock.advance(100); await flush(); }
  assert.equal(c.conn.state, ConnState.READY);
  const pings = c.sock.count(Cmd.PING);
  assert.ok(pings >= 55 && pings <= 60, `pings ${pings}`);
});

test('outstanding: PING after min(ping-interval, resend-timeout/3); dead after resend-timeout with no byte', async () => {
  const c = await readyConn({ pingIntervalMs: 5000, resendTimeoutMs: 3000 });
  c.state.outstanding = true;
  c.conn.sendTxn({ id: 1, op: 'read', offset: 0, length: 512, payload: null, flags: 0,
    submittedAt: 0, attempts: 1, done: null, place: 'sent' }, 0, 1);
  pingsAfter(c, [[999, 0], [1, 1], [1000, 2]]);
  deadAfter(c, 1000);
  assert.match(c.closes[0]!.detail, /no byte from the export for 3000 ms/);
});

test('slow but alive: a long fdatasync with PINGs answered is never declared dead', async () => {
  const c = await readyConn({ pingIntervalMs: 1000, resendTimeoutMs: 2000 });
  c.sock.onFrame = exportBehaviour({ pong: true });
  c.state.outstanding = true; // the flush is outstanding for a minute
  c.conn.sendTxn({ id: 1, op: 'flush', offset: 0, length: 0, payload: null, flags: 0,
    submittedAt: 0, attempts: 1, done: null, place: 'sent' }, 0, 1);
  for (let t = 0; t < 60_000; t += 50) { c.clock.advance(50); await flush(); }
  assert.equal(c.conn.state, ConnState.READY);
  assert.ok(c.sock.count(Cmd.PING) >= 80, `pings ${c.sock.count(Cmd.PING)} (window ${Math.min(1000, 2000 / 3)} ms)`);
  // the export finally answers: work done, idle cadence again, still alive
  c.state.outstanding = false;
  c.sock.send({ cmd: Cmd.IO_RESPONSE, op: 3, id: 1 });
  for (let t = 0; t < 10_000; t += 100) { c.clock.advance(100); await flush(); }
  assert.equal(c.conn.state, ConnState.READY);
});

test('outstanding: the dead clock starts when work starts, not at the last idle byte', async () => {
  const c = await readyConn({ pingIntervalMs: 1000, resendTimeoutMs: 3000 });
  c.clock.advance(1500); // one idle ping unanswered, last byte 1.5 s ago
  c.state.outstanding = true;
  c.conn.sendTxn({ id: 1, op: 'read', offset: 0, length: 1, payload: null, flags: 0,
    submittedAt: 0, attempts: 1, done: null, place: 'sent' }, 0, 1);
  deadAfter(c, 3000);
});
