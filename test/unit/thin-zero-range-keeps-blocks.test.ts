// WRITE_ZEROES with NO_HOLE on a file export (issue 16): fallocate(ZERO_RANGE | KEEP_SIZE) zeroes
// the range in place: it reads zeroes and its blocks stay allocated (no hole is punched).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileBackend } from '../../src/engine/export/backend.js';
import { ZeroFlag } from '../../src/protocol/thin.js';
import { M, allocated, dataAt, requirePunchHole, thinFile } from '../helpers/thin.js';

test('WRITE_ZEROES with NO_HOLE on a file: the range reads zeroes and stays allocated', async (t) => {
  if (!await requirePunchHole(t)) return;
  const path = thinFile(t, 16 * M, [2 * M], 4 * M);
  const b = await FileBackend.open(path, false);
  t.after(() => b.close());
  const before = allocated(path);

  await b.writeZeroes(3 * M, 2 * M, true, ZeroFlag.NO_HOLE);

  assert.equal(allocated(path), before, 'no block was freed or added');
  assert.ok((await b.read(3 * M, 2 * M)).equals(Buffer.alloc(2 * M)), 'the range reads zeroes');
  assert.ok((await b.read(2 * M, M)).equals(dataAt(2 * M, M)), 'the data before it is intact');
  assert.ok((await b.read(5 * M, M)).equals(dataAt(2 * M, 4 * M).subarray(3 * M)), 'the data after it is intact');
});
