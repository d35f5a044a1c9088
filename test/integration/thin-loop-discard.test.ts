// A block-device export over a loop device with discard (issue 16): TRIM reaches the device as
// BLKDISCARD, which the loop driver turns into a hole in its backing file, whose allocated blocks
// drop by the trimmed range; extents of a block device are one data extent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileBackend } from '../../src/engine/export/backend.js';
import { M, allocated, dataAt, loopDevice, requirePunchHole, thinFile } from '../helpers/thin.js';

test('a loop device with discard: TRIM frees the range in its backing file (BLKDISCARD)', async (t) => {
  if (!await requirePunchHole(t)) return;
  const file = thinFile(t, 64 * M, [0], 8 * M);
  const dev = await loopDevice(t, file);
  if (dev === null) return;
  const b = await FileBackend.open(dev, false);
  t.after(() => b.close());
  assert.equal(b.info.blockDevice, true);
  const before = allocated(file);

  await b.trim(2 * M, 4 * M, false);
  await b.flush();

  assert.equal(before - allocated(file), 4 * M, `the loop device's backing file lost the trimmed 4 MiB (${dev})`);
  assert.ok((await b.read(6 * M, 2 * M)).equals(dataAt(6 * M, 2 * M)), 'the data after it is intact');
  assert.deepEqual(await b.extents(0, 64 * M), [{ offset: 0, length: 64 * M, flags: 0 }], 'a block device is all data');
});
