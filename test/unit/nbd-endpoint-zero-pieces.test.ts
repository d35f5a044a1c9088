// TRIM and WRITE_ZEROES move no data, so the NBD endpoint cuts them at the target's
// maxZeroRequest, not at maxRequest: a 4 MiB zeroing is one piece where a 4 MiB write is 64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd } from '../../src/protocol/nbd.js';
import { RawClient, fixture, pattern } from '../helpers/nbd-raw-client.js';

const M = 1024 * 1024;

test('TRIM and WRITE_ZEROES are cut at maxZeroRequest, writes at maxRequest', async (t) => {
  const f = await fixture(t, { size: 16 * M, maxRequest: 64 * 1024, maxZeroRequest: 4 * M });
  const c = await RawClient.connect(f.path);
  await c.open();
  c.send({ type: Cmd.WRITE, offset: 0, length: 4 * M, payload: pattern(4 * M) });
  assert.equal((await c.simpleReply()).error, 0);
  assert.equal(f.target.submitted.length, 64);
  f.target.submitted.length = 0;
  c.send({ type: Cmd.WRITE_ZEROES, offset: 0, length: 4 * M });
  assert.equal((await c.simpleReply()).error, 0);
  c.send({ type: Cmd.TRIM, offset: 4 * M, length: 6 * M });
  assert.equal((await c.simpleReply()).error, 0);
  assert.deepEqual(f.target.submitted.map((r) => [r.op, r.offset, r.length]), [
    ['write-zeroes', 0, 4 * M], ['trim', 4 * M, 4 * M], ['trim', 8 * M, 2 * M],
  ]);
  assert.ok(f.target.data.subarray(0, 4 * M).equals(Buffer.alloc(4 * M)));
  c.destroy();
});
