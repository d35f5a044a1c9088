// An export that answers ESHUTDOWN (it is stopping and never ran the request) is an outage, not a
// failure: the transaction is not completed, the caller is told to drop the link, and the request
// is replayed on the next connection — until its deadline, like any other outage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Flag } from '../../src/protocol/wire.js';
import type { BlockRequest } from '../../src/engine/remote/target.js';
import { txnTable as setup } from '../helpers/txn-table.js';

const wr = (): BlockRequest => ({ op: 'write', offset: 0, length: 4, payload: Buffer.from('stop'), fua: false });

test('ESHUTDOWN from the export: not completed, replayed on the next connection, then completed once', () => {
  const { table, sender, newSender, sent } = setup();
  table.attach(sender);
  const calls: (string | null)[] = [];
  const id = table.submit(wr(), (e) => { calls.push(e); });
  assert.equal(table.onResponse(id, 108, Buffer.alloc(0)), 'not-run');
  assert.deepEqual(calls, [], 'not completed');
  assert.equal(table.stats().failed, 0);
  table.detach();
  table.attach(newSender());
  const replay = sent.at(-1)!;
  assert.equal(replay.id, id, 'replayed on the next connection');
  assert.ok((replay.flags & Flag.REPLAY) !== 0, 'with REPLAY');
  assert.equal(table.onResponse(id, 0, Buffer.alloc(0)), 'completed');
  assert.deepEqual(calls, [null], 'completed exactly once, successfully');
});

test('another errno from the export still completes the request with it', () => {
  const { table, sender } = setup();
  table.attach(sender);
  const calls: (string | null)[] = [];
  const id = table.submit(wr(), (e) => { calls.push(e); });
  assert.equal(table.onResponse(id, 28, Buffer.alloc(0)), 'completed');
  assert.deepEqual(calls, ['ENOSPC']);
});
