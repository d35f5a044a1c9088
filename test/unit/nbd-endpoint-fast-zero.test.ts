// WRITE_ZEROES flags at the NBD endpoint: SEND_FAST_ZERO is advertised when the target honours
// FAST_ZERO, a FAST_ZERO not advertised is refused (EINVAL) before the target, and NO_HOLE and
// FAST_ZERO reach the target as ZeroFlag bits on every piece; the target's ENOTSUP goes back as is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, CmdFlag, NbdErr, TxFlag } from '../../src/protocol/nbd.js';
import { ZeroFlag } from '../../src/protocol/thin.js';
import { createMemoryTarget } from '../helpers/memory-target.js';
import { RawClient, fixture, pattern } from '../helpers/nbd-raw-client.js';

test('FAST_ZERO not advertised: refused with EINVAL, the target never asked; NO_HOLE reaches it', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  const { flags } = await c.open();
  assert.equal(flags & TxFlag.SEND_FAST_ZERO, 0);
  c.send({ type: Cmd.WRITE_ZEROES, flags: CmdFlag.FAST_ZERO, offset: 0, length: 4096 });
  assert.equal((await c.simpleReply()).error, NbdErr.EINVAL);
  assert.equal(f.target.submitted.length, 0);
  c.send({ type: Cmd.WRITE_ZEROES, flags: CmdFlag.NO_HOLE, offset: 0, length: 4096 });
  assert.equal((await c.simpleReply()).error, 0);
  assert.deepEqual(f.target.submitted.map((r) => [r.op, r.zeroFlags]), [['write-zeroes', ZeroFlag.NO_HOLE]]);
  c.destroy();
});

test('FAST_ZERO advertised: the flags reach every piece; the target declining answers ENOTSUP', async (t) => {
  const f = await fixture(t, { fastZero: true, maxRequest: 4096, fail: (r) => (r.offset === 64 * 1024 ? 'ENOTSUP' : null) });
  f.target.data.set(pattern(8192), 0);
  const c = await RawClient.connect(f.path);
  const { flags } = await c.open();
  assert.equal(flags & TxFlag.SEND_FAST_ZERO, TxFlag.SEND_FAST_ZERO);
  c.send({ type: Cmd.WRITE_ZEROES, flags: CmdFlag.FAST_ZERO | CmdFlag.NO_HOLE | CmdFlag.FUA, offset: 0, length: 8192 });
  assert.equal((await c.simpleReply()).error, 0);
  assert.deepEqual(f.target.submitted.map((r) => [r.offset, r.length, r.fua, r.zeroFlags]), [
    [0, 4096, true, ZeroFlag.FAST_ZERO | ZeroFlag.NO_HOLE], [4096, 4096, true, ZeroFlag.FAST_ZERO | ZeroFlag.NO_HOLE],
  ]);
  assert.ok(f.target.data.subarray(0, 8192).equals(Buffer.alloc(8192)));
  c.send({ type: Cmd.WRITE_ZEROES, flags: CmdFlag.FAST_ZERO, offset: 64 * 1024, length: 4096 });
  assert.equal((await c.simpleReply()).error, NbdErr.ENOTSUP);
  c.destroy();
});

test('memory target without fastZero declines FAST_ZERO itself (ENOTSUP) when asked directly', () => {
  const m = createMemoryTarget({ size: 8192, delayMs: 'sync' });
  let got: string | null = 'unset';
  m.submit({ op: 'write-zeroes', offset: 0, length: 4096, payload: null, fua: false, zeroFlags: ZeroFlag.FAST_ZERO }, (e) => { got = e; });
  assert.equal(got, 'ENOTSUP');
});
