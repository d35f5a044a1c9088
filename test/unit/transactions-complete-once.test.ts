// Transaction table: every transaction completes exactly once — reply, deadline, stop — in any order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deadlineMs } from '../../src/engine/types.js';
import { STOP_GRACE_MS } from '../../src/engine/remote/transactions.js';
import type { BlockRequest } from '../../src/engine/remote/target.js';
import { txnTable as setup } from '../helpers/txn-table.js';

const rd = (): BlockRequest => ({ op: 'read', offset: 8192, length: 512, payload: null, fua: false });

/** A done callback that records every call. */
function recorder() {
  const calls: [string | null, Buffer | null][] = [];
  return { calls, done: (e: string | null, d: Buffer | null) => { calls.push([e, d]); } };
}

test('deadline fires exactly at submit + resend-timeout × (max-resends + 1)', () => {
  const { table, sender, clock, events, policy } = setup({ resendTimeoutMs: 100, maxResends: 3 });
  assert.equal(deadlineMs(policy), 400);
  table.attach(sender);
  const r = recorder();
  table.submit(rd(), r.done);
  clock.advance(399);
  assert.equal(r.calls.length, 0);
  clock.advance(1);
  assert.deepEqual(r.calls, [['ETIMEDOUT', null]]);
  assert.equal(table.stats().failed, 1);
  assert.deepEqual(events, [{ event: 'txn-failed', fields: { op: 'read', offset: 8192, length: 512, errno: 'ETIMEDOUT' } }]);
  assert.equal(clock.pending(), 0, 'no timer left once the table is empty');
});

test('the deadline runs whatever the link does (never sent, or replayed)', () => {
  const { table, sender, clock } = setup({ resendTimeoutMs: 100, maxResends: 3 });
  const queuedOnly = recorder();
  table.submit(rd(), queuedOnly.done);              // no connection yet
  clock.advance(150);
  table.attach(sender);                              // sent at t=150
  table.detach();                                    // link lost
  table.attach(sender);                              // replayed
  clock.advance(249);
  assert.equal(queuedOnly.calls.length, 0);
  clock.advance(1);                                  // t = 400 after submit
  assert.deepEqual(queuedOnly.calls, [['ETIMEDOUT', null]]);
});

test('one timer for the whole table, whatever the number of transactions', () => {
  const { table, sender, clock } = setup({ resendTimeoutMs: 100, maxResends: 0 });
  table.attach(sender);
  const rs = Array.from({ length: 50 }, () => recorder());
  for (const r of rs) { table.submit(rd(), r.done); clock.advance(1); }
  assert.equal(clock.pending(), 1);
  clock.advance(50); // t=100: only the one submitted at t=0 has expired
  assert.equal(rs.filter((r) => r.calls.length === 1).length, 1);
  assert.equal(clock.pending(), 1);
  clock.advance(50); // t=150: all of them
  for (const r of rs) assert.deepEqual(r.calls, [['ETIMEDOUT', null]]);
  assert.equal(clock.pending(), 0);
});

test('transactions expire one by one in submit order', () => {
  const { table, sender, clock } = setup({ resendTimeoutMs: 100, maxResends: 0 });
  table.attach(sender);
  const a = recorder();
  const b = recorder();
  table.submit(rd(), a.done);
  clock.advance(40);
  table.submit(rd(), b.done);
  clock.advance(60);
  assert.equal(a.calls.length, 1);
  assert.equal(b.calls.length, 0);
  clock.advance(39);
  assert.equal(b.calls.length, 0);
  clock.advance(1);
  assert.equal(b.calls.length, 1);
});

test('reply after the deadline: ignored, completion stays single', () => {
  const { table, sender, clock } = setup({ resendTimeoutMs: 100, maxResends: 0 });
  table.attach(sender);
  const r = recorder();
  const id = table.submit(rd(), r.done);
  clock.advance(100);
  assert.equal(table.onResponse(id, 0, Buffer.alloc(512)), 'unknown');
  assert.deepEqual(r.calls, [['ETIMEDOUT', null]]);
});

test('deadline after the reply: nothing happens', () => {
  const { table, sender, clock } = setup({ resendTimeoutMs: 100, maxResends: 0 });
  table.attach(sender);
  const r = recorder();
  const id = table.submit(rd(), r.done);
  const data = Buffer.alloc(512, 9);
  assert.equal(table.onResponse(id, 0, data), 'completed');
  clock.advance(1000);
  assert.equal(r.calls.length, 1);
  assert.equal(r.calls[0]![0], null);
  assert.equal(r.calls[0]![1], data);
});

test('duplicate reply and double complete() are no-ops', () => {
  const { table, sender } = setup();
  table.attach(sender);
  const r = recorder();
  const id = table.submit(rd(), r.done);
  const txn = table.get(id)! as Parameters<typeof table.complete>[0];
  assert.equal(table.onResponse(id, 0, Buffer.alloc(512)), 'completed');
  assert.equal(table.onResponse(id, 0, Buffer.alloc(512)), 'unknown');
  assert.equal(table.complete(txn, 'EIO', null), false);
  assert.equal(table.completeId(id, 'EIO', null), false);
  assert.equal(r.calls.length, 1);
});

test('stop after the reply: drain resolves at once, no second completion', async () => {
  const { table, sender } = setup();
  table.attach(sender);
  const r = recorder();
  const id = table.submit(rd(), r.done);
  table.onResponse(id, 0, Buffer.alloc(512));
  await table.drain(STOP_GRACE_MS);
  table.close();
  assert.equal(r.calls.length, 1);
});

test('graceful stop waits for the reply; new submissions refused with ESHUTDOWN', async () => {
  const { table, sender, clock } = setup();
  table.attach(sender);
  const r = recorder();
  const id = table.submit(rd(), r.done);
  let drained = false;
  const p = table.drain(STOP_GRACE_MS).then(() => { drained = true; });
  assert.equal(table.hasCapacity(), false);
  assert.throws(() => table.submit(rd(), () => {}), (e: unknown) => (e as { errno?: string }).errno === 'ESHUTDOWN');
  clock.advance(5000);
  await Promise.resolve();
  assert.equal(drained, false);
  table.onResponse(id, 0, Buffer.alloc(512));
  await p;
  assert.deepEqual(r.calls.map((c) => c[0]), [null]);
});

test('graceful stop fails what is left with ESHUTDOWN after 10 s, then a late reply is ignored', async () => {
  const { table, sender, clock } = setup({ resendTimeoutMs: 60_000 });
  table.attach(sender);
  const r = recorder();
  const id = table.submit(rd(), r.done);
  const p = table.drain(STOP_GRACE_MS);
  clock.advance(STOP_GRACE_MS - 1);
  assert.equal(r.calls.length, 0);
  clock.advance(1);
  await p;
  assert.deepEqual(r.calls, [['ESHUTDOWN', null]]);
  assert.equal(table.onResponse(id, 0, Buffer.alloc(512)), 'unknown');
  clock.advance(10 * 60_000);
  assert.equal(r.calls.length, 1);
});

test('forced stop fails everything at once; deadline and reply afterwards change nothing', async () => {
  const { table, sender, clock } = setup({ resendTimeoutMs: 100, maxResends: 0 });
  table.attach(sender);
  const a = recorder();
  const b = recorder();
  const ida = table.submit(rd(), a.done);
  table.detach();
  table.submit(rd(), b.done); // queued
  await table.drain(0);
  assert.deepEqual(a.calls, [['ESHUTDOWN', null]]);
  assert.deepEqual(b.calls, [['ESHUTDOWN', null]]);
  clock.advance(1000);
  table.onResponse(ida, 0, Buffer.alloc(512));
  assert.equal(a.calls.length + b.calls.length, 2);
  assert.equal(table.stats().failed, 2);
});

test('failAll (identity changed) fails queued and sent with EIO exactly once', () => {
  const { table, sender, events } = setup();
  table.attach(sender);
  const a = recorder();
  const b = recorder();
  table.submit(rd(), a.done);
  table.detach();
  table.submit(rd(), b.done);
  assert.equal(table.failAll('EIO', 'identity-changed'), 2);
  assert.equal(table.failAll('EIO', 'again'), 0);
  assert.deepEqual([...a.calls, ...b.calls], [['EIO', null], ['EIO', null]]);
  assert.equal(events.filter((e) => e.event === 'txn-failed').length, 2);
});

test('a done callback that throws does not break the table', () => {
  const { table, sender } = setup();
  table.attach(sender);
  const id = table.submit(rd(), () => { throw new Error('boom'); });
  assert.equal(table.onResponse(id, 0, Buffer.alloc(512)), 'completed');
  assert.equal(table.size, 0);
});

test('a done callback that completes another transaction re-entrantly', () => {
  const { table, sender } = setup();
  table.attach(sender);
  const b = recorder();
  let idb = 0;
  const ida = table.submit(rd(), () => { table.completeId(idb, 'EIO', null); });
  idb = table.submit(rd(), b.done);
  table.onResponse(ida, 0, Buffer.alloc(512));
  assert.deepEqual(b.calls, [['EIO', null]]);
  assert.equal(table.onResponse(idb, 0, Buffer.alloc(512)), 'unknown');
  assert.equal(b.calls.length, 1);
});

test('shorter policy deadline applies to transactions already in flight', () => {
  const { table, sender, clock, policy } = setup({ resendTimeoutMs: 1000, maxResends: 9 });
  table.attach(sender);
  const r = recorder();
  table.submit(rd(), r.done);
  clock.advance(300);
  policy.resendTimeoutMs = 100; // deadline 1000 now
  table.policyChanged();
  clock.advance(699);
  assert.equal(r.calls.length, 0);
  clock.advance(1);
  assert.deepEqual(r.calls, [['ETIMEDOUT', null]]);
});

test('queue depth 1: no timer per request (the deadline timer outlives an empty table, fires once, stops)', () => {
  const { table, sender, clock } = setup({ resendTimeoutMs: 100, maxResends: 0 });
  let armed = 0;
  const setTimer = clock.setTimer.bind(clock);
  clock.setTimer = (ms, fn) => { armed++; return setTimer(ms, fn); };
  table.attach(sender);
  const done: (string | null)[] = [];
  for (let i = 0; i < 50; i++) {
    const id = table.submit(rd(), (e) => { done.push(e); });
    clock.advance(1);
    table.onResponse(id, 0, Buffer.alloc(512));
  }
  assert.equal(done.length, 50);
  assert.ok(done.every((e) => e === null));
  assert.equal(armed, 1, 'one timer for 50 sequential requests');
  clock.advance(100); // it fires early for a table that is empty: nothing expires, nothing re-armed
  assert.equal(clock.pending(), 0);
  assert.equal(table.stats().failed, 0);
  // a request after that arms it again, and its deadline is still exact
  const late: (string | null)[] = [];
  table.submit(rd(), (e) => { late.push(e); });
  clock.advance(99);
  assert.deepEqual(late, []);
  clock.advance(1);
  assert.deepEqual(late, ['ETIMEDOUT']);
});
