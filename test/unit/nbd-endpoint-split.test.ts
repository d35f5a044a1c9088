// Requests larger than the target takes are split into pieces and answered once, data in order. (A
// raw client over the unix socket: test/helpers/nbd-raw-client.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, CmdFlag, NbdErr, ReplyType, MAX_PAYLOAD } from '../../src/protocol/nbd.js';
import { RawClient, fixture, pattern } from '../helpers/nbd-raw-client.js';

test('requests above maxRequest are split and answered once, with data in order', async (t) => {
  const f = await fixture(t, { maxRequest: 4096, delayMs: (r) => (r.offset / 4096) % 2 === 0 ? 6 : 0 });
  const c = await RawClient.connect(f.path);
  await c.open();
  const data = pattern(10000, 3);
  const wc = c.send({ type: Cmd.WRITE, flags: CmdFlag.FUA, offset: 4096, length: 10000, payload: data });
  c.send({ type: Cmd.READ, cookie: 77n, offset: 4096, length: 10000 });
  // NBD lets the server answer out of order: take both replies as they come
  const got = [await c.anyReply((k) => (k === 77n ? 10000 : 0)), await c.anyReply((k) => (k === 77n ? 10000 : 0))];
  const w = got.find((x) => x.cookie === wc)!;
  const r = got.find((x) => x.cookie === 77n)!;
  assert.equal(w.error, 0);
  assert.equal(r.error, 0);
  assert.equal(r.data.length, 10000);
  assert.deepEqual(f.target.submitted.map((s) => [s.op, s.offset, s.length, s.fua]), [
    ['write', 4096, 4096, true], ['write', 8192, 4096, true], ['write', 12288, 1808, true],
    ['read', 4096, 4096, false], ['read', 8192, 4096, false], ['read', 12288, 1808, false],
  ]);
  // The read may run concurrently with the write at the target (NBD allows it); check the disk
  // and a fresh read after both replies.
  assert.deepEqual(f.target.data.subarray(4096, 14096), data);
  c.send({ type: Cmd.READ, offset: 4096, length: 10000 });
  assert.deepEqual((await c.simpleReply(10000)).data, data);

  // a failure in one piece: one error reply, nothing extra on the wire
  const g = await fixture(t, { maxRequest: 1024, fail: (r) => (r.offset === 2048 ? 'EDQUOT' : null) });
  const d = await RawClient.connect(g.path);
  await d.open();
  const ec = d.send({ type: Cmd.WRITE, offset: 0, length: 5000, payload: pattern(5000) });
  const zc = d.send({ type: Cmd.WRITE_ZEROES, offset: 0, length: 3000 });
  const both = [await d.simpleReply(), await d.simpleReply()].sort((a, b) => Number(a.cookie - b.cookie));
  assert.deepEqual(both.map((x) => [x.cookie, x.error]), [[ec, NbdErr.ENOSPC], [zc, NbdErr.ENOSPC]]);
  // a FLUSH sent after them is answered next: no extra reply came in between
  const fc = d.send({ type: Cmd.FLUSH, offset: 0, length: 0 });
  assert.deepEqual(await d.simpleReply(), { error: 0, cookie: fc, data: Buffer.alloc(0) });
  assert.equal(d.quiet(), true);
  c.destroy();
  d.destroy();
});

test('a synchronous target (done inside submit) works, including splits and capacity', async (t) => {
  const f = await fixture(t, { capacity: 1, maxRequest: 512, delayMs: 'sync' });
  const c = await RawClient.connect(f.path);
  await c.open();
  const data = pattern(5000, 4);
  c.send({ type: Cmd.WRITE, offset: 0, length: 5000, payload: data });
  c.send({ type: Cmd.READ, offset: 0, length: 5000 });
  assert.equal((await c.simpleReply()).error, 0);
  assert.deepEqual((await c.simpleReply(5000)).data, data);
  c.destroy();
});

test('a maximum-size (32 MiB) write and read round-trip through 1 MiB submits', async (t) => {
  const f = await fixture(t, { size: MAX_PAYLOAD + 4096, capacity: 4 });
  const c = await RawClient.connect(f.path);
  await c.open({ structured: true });
  const data = pattern(MAX_PAYLOAD, 11);
  c.send({ type: Cmd.WRITE, offset: 4096, length: MAX_PAYLOAD, payload: data });
  assert.equal((await c.simpleReply()).error, 0);
  assert.equal(f.target.submitted.length, 32);
  c.send({ type: Cmd.READ, offset: 4096, length: MAX_PAYLOAD });
  const ch = await c.chunk();
  assert.equal(ch.type, ReplyType.OFFSET_DATA);
  assert.equal(ch.payload.length, 8 + MAX_PAYLOAD);
  assert.ok(ch.payload.subarray(8).equals(data));
  assert.ok(f.target.maxOutstanding <= 4);
  c.destroy();
});
