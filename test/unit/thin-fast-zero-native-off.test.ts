// FAST_ZERO (issue 16): when zeroing would mean writing zeroes, WRITE_ZEROES fails at once with
// ENOTSUP (the client then writes them itself). With the native file ops switched off
// (DST_NATIVE=0, through loadFileOps with that environment) that is every FAST_ZERO request; the
// disk is left as it was, and without FAST_ZERO the same request writes the zeroes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileBackend } from '../../src/engine/export/backend.js';
import { ZeroFlag } from '../../src/protocol/thin.js';
import { loadFileOps } from '../../src/engine/io/file-ops.js';
import { DstError } from '../../src/util/errors.js';
import { M, dataAt, thinFile } from '../helpers/thin.js';

test('FAST_ZERO with DST_NATIVE=0 fails with ENOTSUP and leaves the data; without it zeroes are written', async (t) => {
  const off = loadFileOps({ DST_NATIVE: '0' });
  assert.equal(off.ops, null, 'DST_NATIVE=0 gives the fallback');
  assert.match(off.text, /^fallback: .*DST_NATIVE=0/);
  const path = thinFile(t, 8 * M, [M], 2 * M);
  const b = await FileBackend.open(path, false, { fileOps: off.ops });
  t.after(() => b.close());

  for (const flags of [ZeroFlag.FAST_ZERO, ZeroFlag.FAST_ZERO | ZeroFlag.NO_HOLE]) {
    await assert.rejects(b.writeZeroes(M, M, false, flags),
      (e: unknown) => e instanceof DstError && e.errno === 'ENOTSUP' && /FAST_ZERO/.test(e.message), `flags ${flags}`);
  }
  assert.ok((await b.read(M, 2 * M)).equals(dataAt(M, 2 * M)), 'nothing was zeroed');

  await b.writeZeroes(M, M, false, 0);
  assert.ok((await b.read(M, M)).equals(Buffer.alloc(M)), 'without FAST_ZERO the zeroes are written');
});
