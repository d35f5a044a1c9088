// WRITE_ZEROES without NO_HOLE on a file export (issue 16) punches a hole instead of writing
// zeroes: over a range half data and half hole, the allocated blocks do not grow (the data half is
// freed) and the whole range reads zeroes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileBackend } from '../../src/engine/export/backend.js';
import { M, allocated, dataAt, requirePunchHole, thinFile } from '../helpers/thin.js';

test('WRITE_ZEROES without NO_HOLE on a file: allocated blocks do not grow, the range reads zeroes', async (t) => {
  if (!await requirePunchHole(t)) return;
  const path = thinFile(t, 16 * M, [2 * M], 4 * M);
  const b = await FileBackend.open(path, false);
  t.after(() => b.close());
  const before = allocated(path);

  // [4 MiB, 10 MiB): 2 MiB of data, then 4 MiB of hole
  await b.writeZeroes(4 * M, 6 * M, true, 0);

  assert.equal(before - allocated(path), 2 * M, 'the data half was freed and nothing was allocated');
  assert.ok((await b.read(4 * M, 6 * M)).equals(Buffer.alloc(6 * M)), 'the range reads zeroes');
  assert.ok((await b.read(2 * M, 2 * M)).equals(dataAt(2 * M, 2 * M)), 'the data before it is intact');
});
