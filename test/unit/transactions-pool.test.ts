// Transaction table: pool, backpressure, ids, ackedBelow, stats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_POOL } from '../../src/engine/remote/transactions.js';
import type { BlockRequest } from '../../src/engine/remote/target.js';
import { txnTable as setup } from '../helpers/txn-table.js';

const rd = (offset = 0, length = 512): BlockRequest => ({ op: 'read', offset, length, payload: null, fua: false });
const wr = (offset = 0, length = 4): BlockRequest => ({ op: 'write', offset, length, payload: Buffer.alloc(length, 7), fua: false });

test('pool is preallocated to max-inflight and never exceeds 128', () => {
  assert.equal(setup({ maxInflight: 8 }).table.poolSize(), 8);
  const big = setup({ maxInflight: 1000 });
  assert.equal(big.table.poolSize(), MAX_POOL);
  assert.equal(big.table.capacity(), MAX_POOL);
});

test('full pool: hasCapacity false, submit throws, capacity listener runs once a slot frees', () => {
  const { table, sender } = setup({ maxInflight: 2 });
  table.attach(sender);
  let woke = 0;
  const off = table.onCapacity(() => woke++);
  const a = table.submit(rd(), () => {});
  assert.equal(table.hasCapacity(), true);
  table.submit(rd(), () => {});
  assert.equal(table.hasCapacity(), false);
  assert.throws(() => table.submit(rd(), () => {}), (e: unknown) => (e as { code?: string }).code === 'DST_ERR_BUSY');
  assert.equal(woke, 0);
  table.onResponse(a, 0, Buffer.alloc(512));
  assert.equal(woke, 1);
  assert.equal(table.hasCapacity(), true);
  // no spurious wake-ups while capacity was never exhausted again
  table.submit(rd(), () => {});
  off();
  table.completeId(table.sentIds()[0]!, null, Buffer.alloc(512));
  assert.equal(woke, 1);
});

test('a capacity listener may submit again from inside the callback', () => {
  const { table, sender } = setup({ maxInflight: 1 });
  table.attach(sender);
  const done: number[] = [];
  const first = table.submit(rd(), () => done.push(1));
  assert.equal(table.hasCapacity(), false);
  table.onCapacity(() => { table.submit(rd(), () => done.push(2)); });
  table.onResponse(first, 0, Buffer.alloc(512));
  assert.deepEqual(done, [1]);
  assert.equal(table.size, 1);
  assert.equal(table.hasCapacity(), false);
});

test('raising max-inflight grows the pool and wakes blocked readers', () => {
  const { table, policy } = setup({ maxInflight: 1 });
  let woke = 0;
  table.onCapacity(() => woke++);
  table.submit(rd(), () => {});
  assert.equal(table.hasCapacity(), false);
  policy.maxInflight = 4;
  table.policyChanged();
  assert.equal(woke, 1);
  assert.equal(table.poolSize(), 4);
  table.submit(rd(), () => {});
  table.submit(rd(), () => {});
  table.submit(rd(), () => {});
  assert.equal(table.hasCapacity(), false);
});

test('ids are monotonic from 1 and never reused although slots are', () => {
  const { table, sender } = setup({ maxInflight: 1 });
  table.attach(sender);
  const ids: number[] = [];
  for (let i = 0; i < 5; i++) {
    const id = table.submit(rd(), () => {});
    ids.push(id);
    table.onResponse(id, 0, Buffer.alloc(512));
  }
  assert.deepEqual(ids, [1, 2, 3, 4, 5]);
  assert.equal(table.poolSize(), 1);
});

test('ackedBelow is the smallest id not completed', () => {
  const { table, sender, sent } = setup();
  table.attach(sender);
  assert.equal(table.ackedBelow(), 1);
  const [a, b, c] = [table.submit(rd(), () => {}), table.submit(rd(), () => {}), table.submit(rd(), () => {})];
  assert.deepEqual(sent.map((s) => s.ackedBelow), [1, 1, 1]);
  table.onResponse(b, 0, Buffer.alloc(512));
  assert.equal(table.ackedBelow(), a);
  table.onResponse(a, 0, Buffer.alloc(512));
  assert.equal(table.ackedBelow(), c);
  const d = table.submit(rd(), () => {});
  assert.equal(sent.at(-1)!.ackedBelow, c);
  table.onResponse(c, 0, Buffer.alloc(512));
  table.onResponse(d, 0, Buffer.alloc(512));
  assert.equal(table.ackedBelow(), 5);
});

test('stats: inflight, peak, completed, failed, bytes, oldestInflightMs', () => {
  const { table, sender, clock } = setup();
  table.attach(sender);
  assert.equal(table.stats().oldestInflightMs, null);
  const r = table.submit(rd(0, 512), () => {});
  clock.advance(30);
  const w = table.submit(wr(0, 4), () => {});
  const f = table.submit({ op: 'flush', offset: 0, length: 0, payload: null, fua: false }, () => {});
  clock.advance(20);
  let s = table.stats();
  assert.equal(s.inflight, 3);
  assert.equal(s.inflightPeak, 3);
  assert.equal(s.oldestInflightMs, 50);
  table.onResponse(r, 0, Buffer.alloc(512));
  table.onResponse(w, 0, Buffer.alloc(0));
  table.onResponse(f, 5 /* EIO */, Buffer.alloc(0));
  s = table.stats();
  assert.deepEqual({ inflight: s.inflight, peak: s.inflightPeak, completed: s.completed, failed: s.failed,
    bytesRead: s.bytesRead, bytesWritten: s.bytesWritten, oldest: s.oldestInflightMs },
  { inflight: 0, peak: 3, completed: 2, failed: 1, bytesRead: 512, bytesWritten: 4, oldest: null });
});

test('FUA writes carry Flag.FUA; write payload is what was submitted', () => {
  const { table } = setup();
  const frames: { flags: number; payload: Buffer | null }[] = [];
  table.attach({ sendTxn: (t, flags) => frames.push({ flags, payload: t.payload }) });
  table.submit({ op: 'write', offset: 0, length: 3, payload: Buffer.from('abc'), fua: true }, () => {});
  assert.equal(frames[0]!.flags, 0x01);
  assert.equal(frames[0]!.payload!.toString(), 'abc');
});

test('reply status maps to an errno name and the export error is a failure', () => {
  const { table, sender, events } = setup();
  table.attach(sender);
  let got: unknown[] = [];
  const id = table.submit(wr(4096, 4), (errno, data) => { got = [errno, data]; });
  table.onResponse(id, 1 /* EPERM */, Buffer.alloc(0));
  assert.deepEqual(got, ['EPERM', null]);
  assert.deepEqual(events, [{ event: 'txn-failed', fields: { op: 'write', offset: 4096, length: 4, errno: 'EPERM' } }]);
});
