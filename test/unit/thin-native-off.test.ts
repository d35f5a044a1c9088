// Without the native file ops (DST_NATIVE=0, or an addon that was not built) a file export stays
// correct (issue 16): TRIM is dropped as a hint (the data stays), WRITE_ZEROES writes zeroes with
// or without NO_HOLE (including over holes and across the 1 MiB zero chunk), FUA ones too, and
// extents report the whole range as data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileBackend, ZERO_CHUNK } from '../../src/engine/export/backend.js';
import { ZeroFlag } from '../../src/protocol/thin.js';
import { loadFileOps } from '../../src/engine/io/file-ops.js';
import { M, dataAt, thinFile } from '../helpers/thin.js';

test('native file ops off: TRIM keeps the data, zeroes are written, extents are all data', async (t) => {
  const { ops } = loadFileOps({ DST_NATIVE: '0' });
  for (const inline of [false, true]) {
    const path = thinFile(t, 16 * M, [2 * M], 4 * M);
    const b = await FileBackend.open(path, false, { fileOps: ops, inline });
    try {
      await b.trim(2 * M, M, false);
      assert.ok((await b.read(2 * M, M)).equals(dataAt(2 * M, M)), `inline ${inline}: TRIM was a hint`);

      await b.writeZeroes(3 * M - 10, ZERO_CHUNK + 20, false, 0);
      assert.ok((await b.read(3 * M - 10, ZERO_CHUNK + 20)).equals(Buffer.alloc(ZERO_CHUNK + 20)), `inline ${inline}: zeroes written`);
      assert.ok((await b.read(2 * M, M - 10)).equals(dataAt(2 * M, M).subarray(0, M - 10)), `inline ${inline}: data before intact`);
      await b.writeZeroes(5 * M, 2 * M, true, ZeroFlag.NO_HOLE); // 1 MiB of data, 1 MiB of hole
      assert.ok((await b.read(5 * M, 2 * M)).equals(Buffer.alloc(2 * M)), `inline ${inline}: NO_HOLE zeroes written`);

      assert.deepEqual(await b.extents(0, 16 * M), [{ offset: 0, length: 16 * M, flags: 0 }], `inline ${inline}: all data`);
      assert.deepEqual(await b.extents(M, 4096), [{ offset: M, length: 4096, flags: 0 }], `inline ${inline}: a hole reported as data`);
    } finally {
      await b.close();
    }
  }
});
