// Requests refused at the edge (bad commands, flags, lengths, ranges, permissions) get an error and
// the connection is kept. (A raw client over the unix socket: test/helpers/nbd-raw-client.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, CmdFlag, NbdErr, TxFlag, MAX_PAYLOAD } from '../../src/protocol/nbd.js';
import { RawClient, fixture, pattern } from '../helpers/nbd-raw-client.js';

test('bad requests get errors and the connection is kept', async (t) => {
  const size = 1 << 20;
  const f = await fixture(t, { size });
  f.target.data.set(pattern(4096, 5), 0);
  const c = await RawClient.connect(f.path);
  await c.open();
  const cases: [string, Parameters<RawClient['send']>[0], number][] = [
    ['read past end', { type: Cmd.READ, offset: size - 512, length: 1024 }, NbdErr.EINVAL],
    ['read at huge offset', { type: Cmd.READ, offset: 2n ** 63n, length: 1 }, NbdErr.EINVAL],
    ['write past end', { type: Cmd.WRITE, offset: size, length: 3, payload: Buffer.from('abc') }, NbdErr.ENOSPC],
    ['write-zeroes past end', { type: Cmd.WRITE_ZEROES, offset: size - 1, length: 2 }, NbdErr.ENOSPC],
    ['trim past end', { type: Cmd.TRIM, offset: size, length: 1 }, NbdErr.EINVAL],
    ['zero-length read', { type: Cmd.READ, offset: 0, length: 0 }, NbdErr.EINVAL],
    ['zero-length write', { type: Cmd.WRITE, offset: 0, length: 0 }, NbdErr.EINVAL],
    ['unknown command', { type: 42, offset: 0, length: 512 }, NbdErr.EINVAL],
    ['CACHE (not advertised)', { type: Cmd.CACHE, offset: 0, length: 512 }, NbdErr.EINVAL],
    ['BLOCK_STATUS (no context)', { type: Cmd.BLOCK_STATUS, offset: 0, length: 512 }, NbdErr.EINVAL],
    ['DF on read (not advertised)', { type: Cmd.READ, flags: CmdFlag.DF, offset: 0, length: 512 }, NbdErr.EINVAL],
    ['NO_HOLE on write', { type: Cmd.WRITE, flags: CmdFlag.NO_HOLE, offset: 0, length: 4, payload: Buffer.from('XXXX') }, NbdErr.EINVAL],
    ['FAST_ZERO on write-zeroes', { type: Cmd.WRITE_ZEROES, flags: CmdFlag.FAST_ZERO, offset: 0, length: 512 }, NbdErr.EINVAL],
    ['unknown flag bit', { type: Cmd.FLUSH, flags: 0x8000, offset: 0, length: 0 }, NbdErr.EINVAL],
    ['read over the max payload', { type: Cmd.READ, offset: 0, length: MAX_PAYLOAD + 1 }, NbdErr.EINVAL],
  ];
  for (const [what, req, err] of cases) {
    const cookie = c.send(req);
    const r = await c.simpleReply();
    assert.deepEqual([r.error, r.cookie], [err, cookie], what);
  }
  // refused writes never reached the target, and their payloads were consumed
  assert.equal(f.target.submitted.length, 0);
  c.send({ type: Cmd.READ, offset: 0, length: 4096 });
  assert.deepEqual((await c.simpleReply(4096)).data, pattern(4096, 5));
  // valid flags are fine; empty trim/zero ranges succeed without touching the target
  for (const req of [
    { type: Cmd.WRITE_ZEROES, flags: CmdFlag.NO_HOLE | CmdFlag.FUA, offset: 0, length: 512 },
    { type: Cmd.READ, flags: CmdFlag.FUA, offset: 0, length: 1 },
    { type: Cmd.TRIM, offset: size, length: 0 },
    { type: Cmd.WRITE_ZEROES, offset: 17, length: 0 },
    { type: Cmd.FLUSH, flags: CmdFlag.FUA, offset: 123, length: 456 }, // reserved fields ignored
  ]) {
    c.send(req);
    assert.equal((await c.simpleReply(req.type === Cmd.READ ? req.length : 0)).error, 0, JSON.stringify(req));
  }
  assert.deepEqual(f.target.submitted.map((s) => s.op), ['read', 'write-zeroes', 'read', 'flush']);
  assert.equal(f.ep.connections, 1);
  c.destroy();
});

test('read-only target: READ_ONLY flag, writes/trims/zeroes → EPERM, reads work', async (t) => {
  const f = await fixture(t, { permissions: 'r' });
  const c = await RawClient.connect(f.path);
  const { flags } = await c.open();
  assert.equal(flags & TxFlag.READ_ONLY, TxFlag.READ_ONLY);
  for (const req of [
    { type: Cmd.WRITE, offset: 0, length: 3, payload: Buffer.from('abc') },
    { type: Cmd.TRIM, offset: 0, length: 4096 },
    { type: Cmd.WRITE_ZEROES, offset: 0, length: 4096 },
  ]) {
    c.send(req);
    assert.equal((await c.simpleReply()).error, NbdErr.EPERM);
  }
  c.send({ type: Cmd.READ, offset: 0, length: 4 });
  assert.equal((await c.simpleReply(4)).error, 0);
  // permissions are checked per request: a later grant applies at once
  f.target.setPermissions('rw');
  c.send({ type: Cmd.WRITE, offset: 0, length: 3, payload: Buffer.from('abc') });
  assert.equal((await c.simpleReply()).error, 0);
  c.destroy();
});
