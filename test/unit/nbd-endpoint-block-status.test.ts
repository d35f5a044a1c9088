// NBD_CMD_BLOCK_STATUS once base:allocation is selected: the memory disk's extents (4 KiB blocks of
// zeroes are holes) in one BLOCK_STATUS chunk under the context id, REQ_ONE → one extent, one
// submit however long the range (no data moves), read access enough; refusals and failures as
// error chunks, and an answer the client must not see (past the range) turned into EIO.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cmd, CmdFlag, NbdErr, ReplyFlag, ReplyType } from '../../src/protocol/nbd.js';
import { decodeBlockStatus } from '../../src/protocol/nbd-replies.js';
import { ExtentFlag, MAX_EXTENTS, encodeExtents } from '../../src/protocol/thin.js';
import { silentLogger } from '../../src/util/log.js';
import { startNbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import { createMemoryTarget } from '../helpers/memory-target.js';
import { RawClient, fixture } from '../helpers/nbd-raw-client.js';

const HOLE = ExtentFlag.HOLE | ExtentFlag.ZERO;
const KiB = 1024;
const MiB = 1024 * KiB;

async function status(c: RawClient, contextId: number, offset: number, length: number, flags = 0): Promise<[number, number][]> {
  const cookie = c.send({ type: Cmd.BLOCK_STATUS, flags, offset, length });
  const ch = await c.chunk();
  assert.deepEqual([ch.type, ch.flags, ch.cookie], [ReplyType.BLOCK_STATUS, ReplyFlag.DONE, cookie], `${offset}+${length}`);
  const s = decodeBlockStatus(ch.payload);
  assert.equal(s.contextId, contextId);
  return s.extents.map((e) => [e.length, e.flags]);
}

async function errorChunk(c: RawClient, req: Parameters<RawClient['send']>[0]): Promise<number> {
  const cookie = c.send(req);
  const ch = await c.chunk();
  assert.deepEqual([ch.type, ch.flags, ch.cookie], [ReplyType.ERROR, ReplyFlag.DONE, cookie]);
  return ch.payload.readUInt32BE(0);
}

test('block status: extents of the disk, REQ_ONE → one extent, one submit for a range past maxRequest', async (t) => {
  const f = await fixture(t, { size: MiB, maxRequest: 64 * KiB });
  f.target.data.fill(7, 0, 4 * KiB);      // data, two blocks of zeroes, one byte of data in the fourth
  f.target.data[15 * KiB] = 1;
  const c = await RawClient.connect(f.path);
  const { contextId } = await c.open({ allocation: true });
  assert.equal(contextId, 1);
  assert.deepEqual(await status(c, 1, 0, MiB), [[4 * KiB, 0], [8 * KiB, HOLE], [4 * KiB, 0], [MiB - 16 * KiB, HOLE]]);
  assert.deepEqual(f.target.submitted.map((r) => [r.op, r.offset, r.length]), [['block-status', 0, MiB]], 'one piece, never split');
  assert.deepEqual(await status(c, 1, 100, 4900), [[3996, 0], [904, HOLE]], 'cut to the range asked');
  assert.deepEqual(await status(c, 1, 0, MiB, CmdFlag.REQ_ONE), [[4 * KiB, 0]]);
  assert.deepEqual(await status(c, 1, 4 * KiB, 20 * KiB, CmdFlag.REQ_ONE), [[8 * KiB, HOLE]]);
  assert.deepEqual(await status(c, 1, MiB - 512, 512), [[512, HOLE]]);
  c.destroy();
});

test('block status: a read-only export answers; refusals and target failures are error chunks', async (t) => {
  const ro = await fixture(t, { permissions: 'r' });
  const r = await RawClient.connect(ro.path);
  await r.open({ allocation: true });
  assert.deepEqual(await status(r, 1, 0, 8 * KiB), [[8 * KiB, HOLE]]);
  r.destroy();

  const f = await fixture(t, { size: MiB, fail: (q) => (q.op === 'block-status' && q.offset === 8 * KiB ? 'ETIMEDOUT' : null) });
  const c = await RawClient.connect(f.path);
  await c.open({ allocation: true });
  assert.equal(await errorChunk(c, { type: Cmd.BLOCK_STATUS, offset: 0, length: 0 }), NbdErr.EINVAL, 'zero length');
  assert.equal(await errorChunk(c, { type: Cmd.BLOCK_STATUS, offset: MiB - 512, length: 1024 }), NbdErr.EINVAL, 'past the end');
  assert.equal(await errorChunk(c, { type: Cmd.BLOCK_STATUS, flags: CmdFlag.FUA, offset: 0, length: 512 }), NbdErr.EINVAL);
  assert.equal(await errorChunk(c, { type: Cmd.READ, flags: CmdFlag.REQ_ONE, offset: 0, length: 512 }), NbdErr.EINVAL);
  assert.equal(await errorChunk(c, { type: Cmd.BLOCK_STATUS, offset: 8 * KiB, length: 512 }), NbdErr.EIO, 'ETIMEDOUT → EIO');
  assert.deepEqual(f.target.submitted.map((q) => q.offset), [8 * KiB], 'only the valid one reached the target');
  f.target.setPermissions('w');
  assert.equal(await errorChunk(c, { type: Cmd.BLOCK_STATUS, offset: 0, length: 512 }), NbdErr.EPERM, 'write-only');
  c.destroy();
});

test('block status: an answer past the range never reaches the client (EIO); a long one is a prefix', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dst-nbd-status-'));
  const mem = createMemoryTarget({ name: 'vol', size: 16 * MiB });
  for (let at = 0; at < 16 * MiB; at += 8 * KiB) mem.data[at] = 1; // data and holes alternate per 4 KiB
  let broken = false;
  const target = { ...mem, submit: (req: Parameters<typeof mem.submit>[0], done: Parameters<typeof mem.submit>[1]) =>
    mem.submit(req, (errno, data) => done(errno, broken ? encodeExtents([{ length: req.length + 1, flags: 0 }]) : data)) };
  const ep = await startNbdEndpoint({ target, socketPath: join(dir, 'vol.sock'), tcp: null, log: silentLogger });
  t.after(async () => { await ep.close({ force: true }); await rm(dir, { recursive: true, force: true }); });
  const c = await RawClient.connect(join(dir, 'vol.sock'));
  await c.open({ allocation: true });
  const long = await status(c, 1, 0, 16 * MiB);
  assert.equal(long.length, MAX_EXTENTS);
  assert.deepEqual(long.slice(0, 2), [[4 * KiB, 0], [4 * KiB, HOLE]]);
  assert.equal(long.reduce((n, [l]) => n + l, 0), MAX_EXTENTS * 4 * KiB, 'a prefix from the offset');
  broken = true;
  assert.equal(await errorChunk(c, { type: Cmd.BLOCK_STATUS, offset: 0, length: 4096 }), NbdErr.EIO);
  broken = false;
  assert.deepEqual(await status(c, 1, 0, 8 * KiB), [[4 * KiB, 0], [4 * KiB, HOLE]], 'the connection is kept');
  c.destroy();
});
