// One NBD request in progress, for thin provisioning: a BLOCK_STATUS is one piece of its whole
// length (whatever the piece size), answered by one checked answer or EIO; a WRITE_ZEROES carries
// NO_HOLE and FAST_ZERO as ZeroFlag bits on every piece.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, CmdFlag } from '../../src/protocol/nbd.js';
import type { RequestMessage } from '../../src/protocol/nbd-decoder.js';
import { RequestInProgress } from '../../src/engine/remote/nbd-request.js';
import { ZeroFlag, encodeExtents } from '../../src/protocol/thin.js';

function req(type: number, offset: number, length: number, flags = 0): RequestMessage {
  return { kind: 'request', type, flags, offset, length, cookie: Buffer.alloc(8), payload: null };
}

test('a block status is one piece of its whole length; its answer is kept as given', () => {
  const job = new RequestInProgress(req(Cmd.BLOCK_STATUS, 4096, 1 << 20, CmdFlag.REQ_ONE), 'block-status', 512);
  assert.equal(job.unissued, 1);
  assert.deepEqual(job.takePiece(), { op: 'block-status', offset: 4096, length: 1 << 20, payload: null, fua: false, zeroFlags: 0 });
  const answer = encodeExtents([{ length: 8192, flags: 3 }]);
  assert.equal(job.pieceDone(0, 1 << 20, null, answer), true);
  assert.equal(job.settle(), true);
  assert.equal(job.result(), answer);
});

test('a block status answer that is no checked answer for the range fails the request with EIO', () => {
  for (const bad of [null, [encodeExtents([{ length: 8, flags: 0 }])], Buffer.alloc(0), encodeExtents([{ length: 4097, flags: 0 }])]) {
    const job = new RequestInProgress(req(Cmd.BLOCK_STATUS, 0, 4096), 'block-status', 4096);
    job.takePiece();
    assert.equal(job.pieceDone(0, 4096, null, bad), false);
    assert.deepEqual([job.settle(), job.errno, job.result()], [true, 'EIO', null]);
  }
});

test('WRITE_ZEROES flags become ZeroFlag bits on every piece; other ops carry none', () => {
  const flags = [[0, 0], [CmdFlag.NO_HOLE, ZeroFlag.NO_HOLE], [CmdFlag.FAST_ZERO, ZeroFlag.FAST_ZERO],
    [CmdFlag.NO_HOLE | CmdFlag.FAST_ZERO | CmdFlag.FUA, ZeroFlag.NO_HOLE | ZeroFlag.FAST_ZERO]] as const;
  for (const [nbd, zero] of flags) {
    const job = new RequestInProgress(req(Cmd.WRITE_ZEROES, 0, 10, nbd), 'write-zeroes', 4);
    const pieces = [job.takePiece(), job.takePiece(), job.takePiece()];
    assert.deepEqual(pieces.map((p) => p.zeroFlags), [zero, zero, zero], `flags 0x${nbd.toString(16)}`);
  }
  assert.equal(new RequestInProgress(req(Cmd.TRIM, 0, 4, CmdFlag.FUA), 'trim', 4).takePiece().zeroFlags, 0);
});
