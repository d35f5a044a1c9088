// TRIM on a file export frees space (issue 16): the backend punches a hole (fallocate
// PUNCH_HOLE | KEEP_SIZE), so the file's allocated blocks drop by the trimmed range, the range
// reads zeroes, the data around it is untouched and the size stays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { FileBackend } from '../../src/engine/export/backend.js';
import { M, allocated, dataAt, requirePunchHole, thinFile } from '../helpers/thin.js';

test('TRIM of a data range on a file: allocated blocks drop by that range and it reads zeroes', async (t) => {
  if (!await requirePunchHole(t)) return;
  const path = thinFile(t, 16 * M, [2 * M], 4 * M);
  const b = await FileBackend.open(path, false);
  t.after(() => b.close());
  const before = allocated(path);
  assert.ok(before >= 4 * M, `the data is allocated (${before} bytes)`);

  await b.trim(3 * M, M, false);
  await b.flush();

  assert.equal(before - allocated(path), M, 'exactly the trimmed MiB was freed');
  assert.ok((await b.read(3 * M, M)).equals(Buffer.alloc(M)), 'the trimmed range reads zeroes');
  assert.ok((await b.read(2 * M, M)).equals(dataAt(2 * M, M)), 'the data before it is intact');
  assert.ok((await b.read(4 * M, 2 * M)).equals(dataAt(2 * M, 4 * M).subarray(2 * M)), 'the data after it is intact');
  assert.equal(statSync(path).size, 16 * M, 'the size is kept');
});
