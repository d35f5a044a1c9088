// Backpressure: target capacity, unread replies and the in-flight cap stop the reading of requests.
// (A raw client over the unix socket: test/helpers/nbd-raw-client.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, ReplyType } from '../../src/protocol/nbd.js';
import { RawClient, fixture, pattern } from '../helpers/nbd-raw-client.js';
import { waitUntil } from '../helpers/net-testkit.js';

test('backpressure: a target with capacity 2 never has more than 2 submits outstanding', async (t) => {
  const f = await fixture(t, { capacity: 2, maxRequest: 8192, delayMs: 2 });
  const c1 = await RawClient.connect(f.path);
  const c2 = await RawClient.connect(f.path);
  await c1.open();
  await c2.open({ structured: true });
  const n = 40;
  const expect1 = new Set<bigint>();
  const expect2 = new Set<bigint>();
  for (let i = 0; i < n; i++) {
    expect1.add(c1.send({ type: Cmd.WRITE, offset: i * 20000, length: 20000, payload: pattern(20000, i) })); // 3 pieces each
    expect2.add(c2.send({ type: Cmd.READ, offset: i * 4096, length: 4096 }));
  }
  for (let i = 0; i < n; i++) {
    const r = await c1.simpleReply();
    assert.equal(r.error, 0);
    assert.ok(expect1.delete(r.cookie));
    const ch = await c2.chunk();
    assert.equal(ch.type, ReplyType.OFFSET_DATA);
    assert.ok(expect2.delete(ch.cookie));
  }
  assert.equal(f.target.maxOutstanding, 2);
  assert.equal(f.target.submitted.length, n * 3 + n);
  assert.equal(f.target.capacityListeners, 0);
  for (let i = 0; i < n; i++) assert.deepEqual(f.target.data.subarray(i * 20000, (i + 1) * 20000), pattern(20000, i));
  c1.destroy();
  c2.destroy();
});

test('a client that does not read its replies stops being read (bounded memory)', async (t) => {
  const f = await fixture(t, { size: 64 << 20 });
  const c = await RawClient.connect(f.path);
  await c.open();
  const n = 100;
  c.sock.pause(); // stop reading replies
  // one write: the endpoint reads all the requests at once and takes what its bound allows
  c.batch(() => { for (let i = 0; i < n; i++) c.send({ type: Cmd.READ, offset: (i % 64) << 20, length: 1 << 20 }); });
  await waitUntil(() => f.target.submitted.length > 0, 5000, 'the requests to be read');
  // unread replies + in-flight reads above MAX_CONN_BYTES (64 MiB) stop the reading of requests
  const submittedWhileStuck = f.target.submitted.length;
  assert.ok(submittedWhileStuck < n, `only part of the requests were taken (${submittedWhileStuck}/${n})`);
  c.sock.resume();
  for (let i = 0; i < n; i++) assert.equal((await c.simpleReply(1 << 20)).error, 0);
  assert.equal(f.target.submitted.length, n);
  c.destroy();
});

test('at most 128 requests per connection are in flight', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  // one write: the endpoint reads all 200 at once and takes what the cap allows
  c.batch(() => { for (let i = 0; i < 200; i++) c.send({ type: Cmd.WRITE, offset: i * 8, length: 8, payload: pattern(8, i) }); });
  await waitUntil(() => f.target.submitted.length > 0, 5000, 'the requests to be read');
  await waitUntil(() => f.target.held === f.target.submitted.length, 5000, 'the submitted writes to be held');
  assert.equal(f.target.held, 128);
  f.target.release();
  for (let i = 0; i < 200; i++) assert.equal((await c.simpleReply()).error, 0);
  assert.equal(f.target.submitted.length, 200);
  c.destroy();
});
