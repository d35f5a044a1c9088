// The export over the DST wire (issue 16): HELLO_REPLY advertises BLOCK_STATUS and the zero flags;
// Op.BLOCK_STATUS answers a sparse file's data and holes as extent descriptors; WRITE_ZEROES with
// NO_HOLE keeps the range allocated, without it the range becomes a hole; FAST_ZERO is refused on
// the other ops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Feature, Flag, Op } from '../../src/protocol/wire.js';
import { EXTENT_SIZE, ExtentFlag } from '../../src/protocol/thin.js';
import { fixture, connected, E } from '../helpers/export-fixture.js';
import { M, allocated, dataAt, requirePunchHole, thinFile } from '../helpers/thin.js';

function extentsOf(payload: Buffer): { length: number; flags: number }[] {
  const out = [];
  for (let at = 0; at < payload.length; at += EXTENT_SIZE) out.push({ length: payload.readUInt32BE(at), flags: payload.readUInt32BE(at + 4) });
  return out;
}

const HOLE = ExtentFlag.HOLE | ExtentFlag.ZERO;

test('export: BLOCK_STATUS reports holes and data; WRITE_ZEROES with and without NO_HOLE', async (t) => {
  if (!await requirePunchHole(t)) return;
  const disk = thinFile(t, 8 * M, [M, 5 * M], M);
  const f = await fixture({ disk });
  try {
    const { c, reply } = await connected(f);
    assert.equal(reply.features & (Feature.BLOCK_STATUS | Feature.ZERO_FLAGS), Feature.BLOCK_STATUS | Feature.ZERO_FLAGS);
    const st = await c.io(Op.BLOCK_STATUS, 0, 8 * M);
    assert.equal(st.status, 0);
    assert.deepEqual(extentsOf(st.payload), [
      { length: M, flags: HOLE }, { length: M, flags: 0 }, { length: 3 * M, flags: HOLE }, { length: M, flags: 0 }, { length: 2 * M, flags: HOLE },
    ]);
    // a range inside data, and one starting in a hole
    assert.deepEqual(extentsOf((await c.io(Op.BLOCK_STATUS, M + 4096, 8192)).payload), [{ length: 8192, flags: 0 }]);
    assert.deepEqual(extentsOf((await c.io(Op.BLOCK_STATUS, 4 * M, 2 * M)).payload), [{ length: M, flags: HOLE }, { length: M, flags: 0 }]);

    // NO_HOLE: zeroes, still allocated (SEEK_DATA may see the unwritten extent as a hole: it
    // reads zeroes either way); without NO_HOLE: a hole, the blocks freed
    const before = allocated(disk);
    assert.equal((await c.io(Op.WRITE_ZEROES, M, M, { flags: Flag.NO_HOLE })).status, 0);
    assert.equal(allocated(disk), before);
    assert.equal(extentsOf((await c.io(Op.BLOCK_STATUS, M, M)).payload).reduce((n, e) => n + e.length, 0), M);
    assert.ok((await c.io(Op.READ, M, M)).payload.equals(Buffer.alloc(M)));
    assert.equal((await c.io(Op.WRITE_ZEROES, 5 * M, M)).status, 0);
    assert.equal(allocated(disk), before - M);
    assert.deepEqual(extentsOf((await c.io(Op.BLOCK_STATUS, 5 * M, M)).payload), [{ length: M, flags: HOLE }]);
    assert.ok((await c.io(Op.READ, 5 * M, M)).payload.equals(Buffer.alloc(M)));
    // FAST_ZERO where the file can punch: done
    await c.io(Op.WRITE, 2 * M, M, { data: dataAt(2 * M, M) });
    assert.equal((await c.io(Op.WRITE_ZEROES, 2 * M, M, { flags: Flag.FAST_ZERO })).status, 0);
    assert.deepEqual(extentsOf((await c.io(Op.BLOCK_STATUS, 2 * M, M)).payload), [{ length: M, flags: HOLE }]);

    // the zero flags belong to WRITE_ZEROES; a block status needs a length
    assert.equal((await c.io(Op.TRIM, 0, 4096, { flags: Flag.FAST_ZERO })).status, E('EINVAL'));
    assert.equal((await c.io(Op.BLOCK_STATUS, 0, 0)).status, E('EINVAL'));
    assert.equal((await c.io(Op.BLOCK_STATUS, 8 * M - 4096, 8192)).status, E('EINVAL'));
    c.close();
  } finally {
    await f.stop();
  }
});
