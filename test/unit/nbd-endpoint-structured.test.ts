// Structured replies: read data and read errors as chunks, everything else as simple replies. (A
// raw client over the unix socket: test/helpers/nbd-raw-client.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, NbdErr, ReplyFlag, ReplyType } from '../../src/protocol/nbd.js';
import { RawClient, fixture, pattern } from '../helpers/nbd-raw-client.js';

test('structured replies: OFFSET_DATA+DONE, ERROR chunk with a message, simple replies for the rest', async (t) => {
  const f = await fixture(t, { fail: (r) => (r.op === 'read' && r.offset === 65536 ? 'ETIMEDOUT' : null) });
  f.target.data.set(pattern(1000, 9), 100);
  const c = await RawClient.connect(f.path);
  await c.open({ structured: true });
  const cookie = c.send({ type: Cmd.READ, offset: 100, length: 1000 });
  const ch = await c.chunk();
  assert.deepEqual([ch.type, ch.flags, ch.cookie], [ReplyType.OFFSET_DATA, ReplyFlag.DONE, cookie]);
  assert.equal(Number(ch.payload.readBigUInt64BE(0)), 100);
  assert.deepEqual(ch.payload.subarray(8), pattern(1000, 9));

  c.send({ type: Cmd.READ, offset: 65536, length: 512 });
  const e = await c.chunk();
  assert.deepEqual([e.type, e.flags], [ReplyType.ERROR, ReplyFlag.DONE]);
  assert.equal(e.payload.readUInt32BE(0), NbdErr.EIO); // ETIMEDOUT → EIO
  assert.match(e.payload.subarray(6, 6 + e.payload.readUInt16BE(4)).toString(), /ETIMEDOUT/);

  c.send({ type: Cmd.READ, offset: 1 << 20, length: 1 }); // refused at the edge: still structured
  const e2 = await c.chunk();
  assert.deepEqual([e2.type, e2.payload.readUInt32BE(0)], [ReplyType.ERROR, NbdErr.EINVAL]);

  c.send({ type: Cmd.WRITE, offset: 0, length: 2, payload: Buffer.from('ok') });
  assert.equal((await c.simpleReply()).error, 0);
  c.send({ type: Cmd.WRITE, offset: 1 << 20, length: 2, payload: Buffer.from('no') });
  assert.equal((await c.simpleReply()).error, NbdErr.ENOSPC);
  c.destroy();
});
