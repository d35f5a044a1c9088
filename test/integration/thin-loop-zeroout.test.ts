// WRITE_ZEROES on a block-device export over a loop device (issue 16): BLKZEROOUT zeroes the range
// without writing zeroes: the loop driver zeroes it in its backing file with fallocate(ZERO_RANGE),
// which leaves unwritten extents that SEEK_DATA reports as holes while none of their pages is cached
// (written zeroes would be data).
// FAST_ZERO is honoured too (the kernel's no-fallback zeroing); the data around is untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileBackend, HOLE_FLAGS } from '../../src/engine/export/backend.js';
import { ZeroFlag } from '../../src/protocol/thin.js';
import { M, dataAt, loopDevice, requirePunchHole, thinFile } from '../helpers/thin.js';

test('a loop device: WRITE_ZEROES is BLKZEROOUT (no zeroes written), FAST_ZERO works; the ranges read zeroes', async (t) => {
  if (!await requirePunchHole(t)) return;
  const file = thinFile(t, 64 * M, [0], 8 * M);
  const dev = await loopDevice(t, file);
  if (dev === null) return;
  const b = await FileBackend.open(dev, false);
  t.after(() => b.close());

  await b.writeZeroes(2 * M, 2 * M, true, 0);
  await b.writeZeroes(5 * M, M, true, ZeroFlag.FAST_ZERO);
  await b.writeZeroes(16 * M, 8 * M, true, 0); // a hole of the backing file

  const backing = await FileBackend.open(file, true);
  t.after(() => backing.close());
  assert.deepEqual(await backing.extents(0, 64 * M), [
    { offset: 0, length: 2 * M, flags: 0 },
    { offset: 2 * M, length: 2 * M, flags: HOLE_FLAGS },
    { offset: 4 * M, length: M, flags: 0 },
    { offset: 5 * M, length: M, flags: HOLE_FLAGS },
    { offset: 6 * M, length: 2 * M, flags: 0 },
    { offset: 8 * M, length: 56 * M, flags: HOLE_FLAGS },
  ], 'no zero was written to the backing file');

  // only now: reading through the loop device caches the backing file's pages, which SEEK_DATA counts as data
  assert.ok((await b.read(2 * M, 2 * M)).equals(Buffer.alloc(2 * M)), 'BLKZEROOUT zeroed');
  assert.ok((await b.read(5 * M, M)).equals(Buffer.alloc(M)), 'FAST_ZERO zeroed');
  assert.ok((await b.read(16 * M, 8 * M)).equals(Buffer.alloc(8 * M)), 'the hole reads zeroes');
  assert.ok((await b.read(4 * M, M)).equals(dataAt(4 * M, M)), 'the data between is intact');
});
