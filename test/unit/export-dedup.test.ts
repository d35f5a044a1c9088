// Export dedup: replays answered from the record, ackedBelow pruning, the bound, sessions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DedupTable, SessionTable } from '../../src/engine/export/dedup.js';

test('dedup: an executed id is answered from its record; unknown ids are not', () => {
  const t = new DedupTable();
  t.record(1, 0);
  t.record(2, 5);
  assert.equal(t.lookup(1), 0);
  assert.equal(t.lookup(2), 5, 'an error status is recorded too');
  assert.equal(t.lookup(3), undefined);
  t.record(1, 28); // re-executed (not a replay): the latest status wins
  assert.equal(t.lookup(1), 28);
});

test('dedup: records below ackedBelow are dropped', () => {
  const t = new DedupTable();
  for (let id = 1; id <= 10; id++) t.record(id, 0);
  assert.equal(t.prune(6), 5);
  assert.equal(t.size, 5);
  assert.equal(t.lookup(5), undefined);
  assert.equal(t.lookup(6), 0);
  assert.equal(t.prune(6), 0, 'idempotent');
  assert.equal(t.prune(100), 5);
  assert.equal(t.size, 0);
});

test('dedup: out-of-order completion — a record stuck behind a newer one goes later', () => {
  const t = new DedupTable();
  t.record(2, 0);
  t.record(1, 0);
  t.record(3, 0);
  t.prune(2); // walks from 2: stops at once
  assert.equal(t.lookup(1), 0);
  t.prune(4);
  assert.equal(t.size, 0);
});

test('dedup: the table is bounded; the oldest go first and the overflow is reported', () => {
  const reports: number[] = [];
  const t = new DedupTable(100, (n) => reports.push(n));
  for (let id = 0; id < 250; id++) t.record(id, 0);
  assert.equal(t.size, 100);
  assert.equal(t.dropped, 150);
  assert.equal(t.lookup(149), undefined);
  assert.equal(t.lookup(150), 0);
  assert.deepEqual(reports, [1], 'reported once, not per record');
});

test('dedup: the default bound is 4 × 128 × 64', () => {
  assert.equal(new DedupTable().limit, 32768);
});

test('sessions: obtain creates once, then reports known', () => {
  const s = new SessionTable();
  const id = Buffer.alloc(16, 7);
  const a = s.obtain(id, 0);
  assert.equal(a.known, false);
  const b = s.obtain(Buffer.from(id), 10);
  assert.equal(b.known, true);
  assert.equal(a.session, b.session);
  assert.equal(a.session.hex, '07'.repeat(16));
});

test('sessions: idle ones are forgotten, busy ones kept; the table is bounded', () => {
  const s = new SessionTable<object>({ idleMs: 1000, maxSessions: 3 });
  const ids = [1, 2, 3, 4].map((n) => Buffer.alloc(16, n));
  const busy = s.obtain(ids[0]!, 0).session;
  busy.connections.add({});
  s.obtain(ids[1]!, 100);
  s.obtain(ids[2]!, 200);
  s.obtain(ids[3]!, 300); // over the bound: the longest-idle without connections goes (ids[1])
  assert.equal(s.size, 3);
  assert.equal(s.get(ids[1]!), undefined);
  assert.ok(s.get(ids[0]!), 'a session with a connection is never evicted');
  assert.equal(s.sweep(5000), 2, 'idle sessions without connections are swept');
  assert.ok(s.get(ids[0]!));
});
