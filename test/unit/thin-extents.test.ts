// Extents of a file export (issue 16): SEEK_DATA/SEEK_HOLE list exactly the data a sparse 1 GiB
// file holds (1 MiB at three known offsets) and holes elsewhere, for the whole disk and for a range
// that starts and ends inside data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileBackend, HOLE_FLAGS } from '../../src/engine/export/backend.js';
import { M, requirePunchHole, thinFile } from '../helpers/thin.js';

const G = 1024 * M;
const DATA = [0, 300 * M, G - M];

test('extents of a 1 GiB file with 1 MiB of data at three offsets: exactly those data extents', async (t) => {
  if (!await requirePunchHole(t)) return;
  const b = await FileBackend.open(thinFile(t, G, DATA, M), true);
  t.after(() => b.close());

  assert.deepEqual(await b.extents(0, G), [
    { offset: 0, length: M, flags: 0 },
    { offset: M, length: 299 * M, flags: HOLE_FLAGS },
    { offset: 300 * M, length: M, flags: 0 },
    { offset: 301 * M, length: G - 302 * M, flags: HOLE_FLAGS },
    { offset: G - M, length: M, flags: 0 },
  ]);
  const from = 300 * M + 4096;
  assert.deepEqual(await b.extents(from, G - M + 8192 - from), [
    { offset: from, length: M - 4096, flags: 0 },
    { offset: 301 * M, length: G - 302 * M, flags: HOLE_FLAGS },
    { offset: G - M, length: 8192, flags: 0 },
  ], 'a range that starts and ends inside data');
  assert.deepEqual(await b.extents(2 * M, 4096), [{ offset: 2 * M, length: 4096, flags: HOLE_FLAGS }], 'a range inside a hole');
  assert.deepEqual(await b.extents(5, 0), [], 'an empty range');
});
