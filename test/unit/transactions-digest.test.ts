// Transaction table: a 'digest' completes with exactly the export's 32 bytes as its data (any other
// length is a bad response: the link is dropped and the digest replayed, with REPLAY, on the next
// one), and digests count as neither bytes read nor bytes written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, Op } from '../../src/protocol/wire.js';
import { WIRE_OP } from '../../src/engine/remote/connection.js';
import type { LegRequest } from '../../src/engine/remote/target.js';
import { txnTable as setup } from '../helpers/txn-table.js';

const digest = (length: number): LegRequest => ({ op: 'digest', offset: 4096, length, payload: null, fua: false });

test('a digest completes with its 32 bytes; 31 or 33 bytes is bad and it is replayed; not counted as bytes', () => {
  assert.equal(WIRE_OP.digest, Op.DIGEST);
  const { table, sender, newSender, sent } = setup();
  table.attach(sender);
  const calls: [string | null, Buffer | null][] = [];
  const id = table.submit(digest(1 << 20), (e, d) => { calls.push([e, d]); });
  assert.deepEqual(sent, [{ id, flags: 0, ackedBelow: id, op: 'digest' }]);

  assert.equal(table.onResponse(id, 0, Buffer.alloc(31)), 'bad');
  assert.equal(table.onResponse(id, 0, Buffer.alloc(33)), 'bad');
  assert.equal(calls.length, 0, 'a bad response completes nothing');
  table.detach();
  table.attach(newSender());
  assert.equal(sent.at(-1)!.flags & Flag.REPLAY, Flag.REPLAY, 'replayed on the next connection');

  const sum = Buffer.alloc(32, 0x5a);
  assert.equal(table.onResponse(id, 0, sum), 'completed');
  assert.equal(calls.length, 1);
  assert.equal(calls[0]![0], null);
  assert.deepEqual(calls[0]![1], sum);

  const st = table.stats();
  assert.equal(st.completed, 1);
  assert.equal(st.bytesRead, 0, 'a digest is not bytes read');
  assert.equal(st.bytesWritten, 0);
});

test('a failed digest carries no data', () => {
  const { table, sender } = setup();
  table.attach(sender);
  const calls: [string | null, Buffer | null][] = [];
  const id = table.submit(digest(512), (e, d) => { calls.push([e, d]); });
  assert.equal(table.onResponse(id, 22, Buffer.alloc(0)), 'completed');
  assert.deepEqual(calls, [['EINVAL', null]]);
});
