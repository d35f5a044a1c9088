// Transaction table: replay after reconnect — id order, REPLAY flag, max-resends, unknown ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Flag } from '../../src/protocol/wire.js';
import { type TxnSender } from '../../src/engine/remote/transactions.js';
import type { BlockRequest } from '../../src/engine/remote/target.js';
import { txnTable as setup } from '../helpers/txn-table.js';

const wr = (offset: number): BlockRequest => ({ op: 'write', offset, length: 1, payload: Buffer.from([offset & 0xff]), fua: false });

test('sent transactions go back to queued on loss and are replayed in id order with REPLAY', () => {
  const { table, sent, newSender, events } = setup();
  table.attach(newSender());
  const ids = [table.submit(wr(0), () => {}), table.submit(wr(1), () => {}), table.submit(wr(2), () => {})];
  // the export answered the middle one only
  table.onResponse(ids[1]!, 0, Buffer.alloc(0));
  assert.deepEqual(table.sentIds(), [1, 3]);
  assert.equal(table.detach(), 2);
  assert.deepEqual(table.sentIds(), []);
  assert.deepEqual(table.queuedIds(), [1, 3]);
  // submitted while disconnected: queued behind, never sent → no REPLAY flag
  const late = table.submit(wr(3), () => {});
  assert.deepEqual(table.queuedIds(), [1, 3, 4]);
  sent.length = 0;
  assert.equal(table.attach(newSender()), 2);
  assert.deepEqual(sent.map((s) => [s.id, s.flags & Flag.REPLAY]), [[1, Flag.REPLAY], [3, Flag.REPLAY], [late, 0]]);
  assert.deepEqual(sent.map((s) => s.ackedBelow), [1, 1, 1]);
  assert.deepEqual(table.queuedIds(), []);
  const s = table.stats();
  assert.equal(s.resends, 2);
  assert.equal(s.replayed, 2);
  assert.deepEqual(events, [{ event: 'replayed', fields: { count: 2 } }]);
});

test('a transaction is in exactly one place at a time', () => {
  const { table, newSender } = setup();
  const a = table.submit(wr(0), () => {});
  assert.deepEqual([table.queuedIds(), table.sentIds()], [[a], []]);
  table.attach(newSender());
  assert.deepEqual([table.queuedIds(), table.sentIds()], [[], [a]]);
  table.detach();
  assert.deepEqual([table.queuedIds(), table.sentIds()], [[a], []]);
  table.completeId(a, 'EIO', null);
  assert.deepEqual([table.queuedIds(), table.sentIds(), table.size], [[], [], 0]);
});

test('no replayed event when nothing was stranded', () => {
  const { table, newSender, events } = setup();
  table.attach(newSender());
  table.detach();
  assert.equal(table.attach(newSender()), 0);
  assert.deepEqual(events, []);
});

test('each transaction is resent at most max-resends times, then fails with EIO', () => {
  const { table, sent, newSender, events } = setup({ maxResends: 2 });
  const calls: (string | null)[] = [];
  table.attach(newSender());
  table.submit(wr(5), (e) => calls.push(e));
  for (let round = 1; round <= 2; round++) {
    table.detach();
    assert.equal(table.attach(newSender()), 1, `replay round ${round}`);
  }
  assert.equal(sent.length, 3); // first send + 2 resends
  table.detach();
  assert.equal(table.attach(newSender()), 0);
  assert.deepEqual(calls, ['EIO']);
  assert.equal(sent.length, 3);
  assert.equal(table.stats().resends, 2);
  assert.deepEqual(events.map((e) => e.event), ['replayed', 'replayed', 'txn-failed']);
});

test('max-resends 0: a stranded transaction fails at the first reconnect', () => {
  const { table, newSender } = setup({ maxResends: 0 });
  const calls: (string | null)[] = [];
  table.attach(newSender());
  table.submit(wr(0), (e) => calls.push(e));
  table.detach();
  table.attach(newSender());
  assert.deepEqual(calls, ['EIO']);
});

test('a completion during replay that submits again keeps id order', () => {
  const { table, sent, newSender } = setup({ maxResends: 0 });
  table.attach(newSender());
  // id 1 will exhaust its resends at the next attach; its done() submits id 3 at once
  table.submit(wr(0), () => { table.submit(wr(9), () => {}); });
  table.detach();
  table.submit(wr(1), () => {}); // id 2, never sent
  sent.length = 0;
  table.attach(newSender());
  assert.deepEqual(sent.map((s) => [s.id, s.flags]), [[2, 0], [3, 0]]);
});

test('losing the link in the middle of a replay requeues the rest in order', () => {
  const { table, sent } = setup();
  for (let i = 0; i < 4; i++) table.submit(wr(i), () => {});
  const flaky: TxnSender = { sendTxn: (t) => { sent.push({ id: t.id, flags: 0, ackedBelow: 0, op: t.op }); if (t.id === 2) table.detach(); } };
  table.attach(flaky);
  assert.deepEqual(sent.map((s) => s.id), [1, 2]);
  assert.deepEqual(table.queuedIds(), [1, 2, 3, 4]);
  assert.deepEqual(table.sentIds(), []);
});

test('responses for unknown ids are ignored; a short READ reply is reported bad', () => {
  const { table, newSender } = setup();
  table.attach(newSender());
  assert.equal(table.onResponse(42, 0, Buffer.alloc(10)), 'unknown');
  const calls: (string | null)[] = [];
  const id = table.submit({ op: 'read', offset: 0, length: 512, payload: null, fua: false }, (e) => calls.push(e));
  assert.equal(table.onResponse(id, 0, Buffer.alloc(100)), 'bad');
  assert.deepEqual(calls, []);
  assert.deepEqual(table.sentIds(), [id]); // stays sent: replayed on the next connection
});

test('a queued (not sent) id answered on the wire is unknown', () => {
  const { table } = setup();
  const id = table.submit(wr(0), () => {});
  assert.equal(table.onResponse(id, 0, Buffer.alloc(0)), 'unknown');
  assert.equal(table.size, 1);
});
