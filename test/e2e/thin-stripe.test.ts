// Issue 16 through a two-leg stripe (64 KiB chunks): `nbdinfo --map` of the device joins the legs'
// extents back into exactly the ranges written (within one chunk, across a chunk boundary, over
// many chunks), and a TRIM over many chunks punches holes on both legs and shows in the map.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutDevice, startLegs } from '../helpers/legs.js';
import { K, M, allocated, checkCovers, dataAt, dataRanges, nbdinfoMap, requirePunchHole } from '../helpers/thin.js';
import { requireTool } from '../helpers/tools.js';

// [1M, +1M): 16 chunks, both legs; [5M+64K, +64K): one chunk, one leg;
// [9M+32K, +96K): across a chunk boundary; [31M, +1M): the end of the device
const WRITES: Array<[number, number]> = [[M, M], [5 * M + 64 * K, 64 * K], [9 * M + 32 * K, 96 * K], [31 * M, M]];

test('stripe: extents join through the layout; TRIM frees both legs', { timeout: 60_000 }, async (t) => {
  if (!requireTool(t, 'nbdinfo', 'libnbd-bin') || !(await requirePunchHole(t))) return;
  const { legs } = await startLegs(t, [16 * M, 16 * M]);
  const { nbd, show } = await layoutDevice(t, legs, ['--layout', 'stripe', '--chunk', '64K']);
  const size = show.size!;
  assert.equal(size, 32 * M);
  const uri = show.nbd!.uri;
  for (const [at, len] of WRITES) await nbd.write(at, dataAt(at, len));
  await nbd.flush();

  const map = await nbdinfoMap(uri);
  checkCovers(map, size, 'nbdinfo --map of the stripe');
  assert.deepEqual(dataRanges(map), WRITES, `the stripe's map lists the written ranges: ${JSON.stringify(map)}`);

  const before = legs.map((l) => allocated(l.file));
  await nbd.trim(M, M);
  await nbd.flush();
  for (const [i, l] of legs.entries()) {
    const freed = before[i]! - allocated(l.file);
    assert.ok(Math.abs(freed - 512 * K) <= 64 * K, `leg ${i} gave back its half of the trimmed MiB: freed ${freed}`);
  }
  assert.ok((await nbd.read(M, M)).equals(Buffer.alloc(M)), 'the trimmed range reads zeroes');
  assert.ok((await nbd.read(9 * M + 32 * K, 96 * K)).equals(dataAt(9 * M + 32 * K, 96 * K)), 'the other data is untouched');
  const after = await nbdinfoMap(uri);
  checkCovers(after, size, 'nbdinfo --map of the stripe after TRIM');
  assert.deepEqual(dataRanges(after), WRITES.slice(1), `the map shows the hole: ${JSON.stringify(after)}`);
});
