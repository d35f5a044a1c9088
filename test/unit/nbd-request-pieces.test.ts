// One NBD request in progress, without a socket: its pieces of at most maxRequest bytes, and
// the reassembly of their results (in order, whatever order they complete in) into one answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, CmdFlag } from '../../src/protocol/nbd.js';
import type { RequestMessage } from '../../src/protocol/nbd-decoder.js';
import { RequestInProgress } from '../../src/engine/remote/nbd-request.js';

function req(type: number, offset: number, length: number, flags = 0, payload: Buffer | null = null): RequestMessage {
  return { kind: 'request', type, flags, offset, length, cookie: Buffer.alloc(8), payload };
}

test('a split WRITE: views into its payload, FUA on every piece, settled once the last is done', () => {
  const payload = Buffer.from(Array.from({ length: 10 }, (_, i) => i));
  const job = new RequestInProgress(req(Cmd.WRITE, 100, 10, CmdFlag.FUA, payload), 'write', 4);
  const pieces = [];
  while (job.unissued > 0) pieces.push({ index: job.piece, ...job.takePiece() });
  assert.deepEqual(pieces.map((p) => [p.index, p.offset, p.length, p.fua, [...p.payload!]]), [
    [0, 100, 4, true, [0, 1, 2, 3]], [1, 104, 4, true, [4, 5, 6, 7]], [2, 108, 2, true, [8, 9]],
  ]);
  assert.equal(pieces[0]!.payload!.buffer, payload.buffer, 'a view, not a copy');
  assert.equal(job.settle(), false);
  for (const p of pieces.reverse()) assert.equal(job.pieceDone(p.index, p.length, null, null), true);
  assert.deepEqual([job.settle(), job.settle(), job.errno], [true, false, null]);
});

test('a split READ reassembles in order; a short piece or an error fails the whole request once', () => {
  const job = new RequestInProgress(req(Cmd.READ, 0, 5), 'read', 2);
  const taken = [job.takePiece(), job.takePiece(), job.takePiece()];
  assert.deepEqual(taken.map((p) => [p.offset, p.length, p.fua, p.payload]),
    [[0, 2, false, null], [2, 2, false, null], [4, 1, false, null]]);
  job.pieceDone(2, 1, null, Buffer.from('e'));
  job.pieceDone(0, 2, null, Buffer.from('ab'));
  job.pieceDone(1, 2, null, Buffer.from('cd'));
  assert.equal(job.settle(), true);
  assert.equal(Buffer.concat(job.result() as Buffer[]).toString(), 'abcde');

  const short = new RequestInProgress(req(Cmd.READ, 0, 4), 'read', 4);
  short.takePiece();
  assert.equal(short.pieceDone(0, 4, null, Buffer.from('ab')), false);
  assert.deepEqual([short.settle(), short.errno], [true, 'EIO']);

  const failed = new RequestInProgress(req(Cmd.TRIM, 0, 8), 'trim', 4);
  failed.takePiece();
  failed.takePiece();
  failed.pieceDone(1, 4, 'ENOSPC', null);
  failed.pieceDone(0, 4, 'EIO', null);
  assert.deepEqual([failed.settle(), failed.errno], [true, 'ENOSPC'], 'the first failure is the answer');
});

test('abandoning the unsubmitted rest answers once the submitted pieces are done; FLUSH is one piece', () => {
  const job = new RequestInProgress(req(Cmd.WRITE_ZEROES, 0, 12), 'write-zeroes', 4);
  job.takePiece();
  job.abandon('ESHUTDOWN');
  assert.deepEqual([job.unissued, job.settle()], [0, false]);
  job.pieceDone(0, 4, null, null);
  assert.deepEqual([job.settle(), job.errno], [true, 'ESHUTDOWN']);

  const refused = new RequestInProgress(req(Cmd.WRITE_ZEROES, 0, 4), 'write-zeroes', 4);
  refused.takePiece();
  refused.untake();
  refused.abandon('EIO');
  assert.deepEqual([refused.settle(), refused.errno], [true, 'EIO']);

  const flush = new RequestInProgress(req(Cmd.FLUSH, 123, 456, CmdFlag.FUA), 'flush', 4);
  assert.equal(flush.unissued, 1);
  assert.deepEqual(flush.takePiece(), { op: 'flush', offset: 0, length: 0, payload: null, fua: false, zeroFlags: 0 });
  assert.equal(flush.result(), null);
});
