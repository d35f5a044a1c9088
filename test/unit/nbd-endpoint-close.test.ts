// Closing the endpoint: graceful (in-flight answered, buffered and unsubmitted work → ESHUTDOWN) or
// forced. (A raw client over the unix socket: test/helpers/nbd-raw-client.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { Cmd, NbdErr } from '../../src/protocol/nbd.js';
import { RawClient, fixture, pattern, turn } from '../helpers/nbd-raw-client.js';
import { waitUntil } from '../helpers/net-testkit.js';

test('graceful close waits for in-flight replies; new connections are refused', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  const wc = c.send({ type: Cmd.WRITE, offset: 0, length: 2, payload: Buffer.from('gc') });
  await waitUntil(() => f.target.held === 1, 5000, 'the write to be held');
  let closed = false;
  const closing = f.ep.close({ force: false }).then(() => { closed = true; });
  await assert.rejects(RawClient.connect(f.path)); // socket file removed, not listening
  assert.equal(closed, false);
  f.target.release();
  const r = await c.simpleReply();
  assert.deepEqual([r.cookie, r.error], [wc, 0]);
  await c.closed;
  await closing;
  assert.equal(f.ep.connections, 0);
  await assert.rejects(stat(f.path), /ENOENT/);
});

test('graceful close answers a waiting split remainder and buffered requests with ESHUTDOWN', async (t) => {
  const f = await fixture(t, { capacity: 1, maxRequest: 1024 });
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  // one write: all three are read at once, so the last two are buffered behind the first
  const [first, second, third] = c.batch(() => [
    c.send({ type: Cmd.WRITE, offset: 0, length: 2048, payload: pattern(2048) }), // piece 1 held, piece 2 waits
    c.send({ type: Cmd.WRITE, offset: 4096, length: 2, payload: Buffer.from('bb') }), // buffered
    c.send({ type: Cmd.FLUSH, offset: 0, length: 0 }), // buffered
  ]);
  await waitUntil(() => f.target.held === 1, 5000, 'the first piece to be held');
  assert.equal(f.target.submitted.length, 1);
  const closing = f.ep.close({ force: false }); // starts draining at once
  f.target.release();
  await closing;
  const replies = new Map<bigint, number>();
  for (let i = 0; i < 3; i++) { const r = await c.simpleReply(); replies.set(r.cookie, r.error); }
  assert.deepEqual([replies.get(first), replies.get(second), replies.get(third)], [NbdErr.ESHUTDOWN, NbdErr.ESHUTDOWN, NbdErr.ESHUTDOWN]);
  assert.equal(f.target.submitted.length, 1, 'nothing new submitted while draining');
  await c.closed;
});

test('force close destroys connections at once', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  c.send({ type: Cmd.READ, offset: 0, length: 4 });
  await waitUntil(() => f.target.held === 1, 5000, 'the read to be held');
  await f.ep.close({ force: true });
  await c.closed;
  f.target.release(); // late completion after close: dropped
  await turn();
});
