// Issue 16 through a two-leg mirror: `nbdinfo --map` of the device lists exactly the ranges
// written (extents come from a leg in sync); TRIM and WRITE_ZEROES reach both legs as holes, so
// the legs' files stay byte-identical, read zeroes there, both give the space back, and the map
// shows the holes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutDevice, readFileAt, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import { K, M, allocated, checkCovers, dataAt, dataRanges, nbdinfoMap, requirePunchHole } from '../helpers/thin.js';
import { requireTool } from '../helpers/tools.js';

const WRITES: Array<[number, number]> = [[2 * M, M], [10 * M + 64 * K, 512 * K], [20 * M, 4 * M], [30 * M, M]];
const ZERO: [number, number] = [2 * M, M];
const TRIM: [number, number] = [20 * M, 2 * M];

test('mirror: extents map through the layout; after TRIM and WRITE_ZEROES the legs are identical holes', { timeout: 90_000 }, async (t) => {
  if (!requireTool(t, 'nbdinfo', 'libnbd-bin') || !(await requirePunchHole(t))) return;
  const { legs } = await startLegs(t, [40 * M, 40 * M]);
  const { nbd, rem, show } = await layoutDevice(t, legs, ['--layout', 'mirror']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  const size = show.size!;
  const uri = show.nbd!.uri;
  for (const [at, len] of WRITES) await nbd.write(at, dataAt(at, len));
  await nbd.flush();

  const map = await nbdinfoMap(uri);
  checkCovers(map, size, 'nbdinfo --map of the mirror');
  assert.deepEqual(dataRanges(map), WRITES, `the mirror's map lists the written ranges: ${JSON.stringify(map)}`);

  const before = legs.map((l) => allocated(l.file));
  await nbd.writeZeroes(...ZERO);
  await nbd.trim(...TRIM);
  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, size), 'the legs are byte-identical after TRIM and WRITE_ZEROES');
  for (const [at, len] of [ZERO, TRIM]) {
    assert.ok((await nbd.read(at, len)).equals(Buffer.alloc(len)), `[${at}, +${len}) reads zeroes through the mirror`);
    for (const l of legs) assert.ok(readFileAt(l.file, at, len).equals(Buffer.alloc(len)), `[${at}, +${len}) reads zeroes in ${l.file}`);
  }
  for (const [i, l] of legs.entries()) {
    const freed = before[i]! - allocated(l.file);
    assert.ok(freed >= ZERO[1] + TRIM[1] - 64 * K, `leg ${i} gave back the zeroed and trimmed ${ZERO[1] + TRIM[1]} bytes: freed ${freed}`);
  }
  assert.ok((await nbd.read(22 * M, 2 * M)).equals(dataAt(22 * M, 2 * M)), 'the rest of the trimmed write is untouched');

  const after = await nbdinfoMap(uri);
  checkCovers(after, size, 'nbdinfo --map of the mirror after TRIM');
  assert.deepEqual(dataRanges(after), [WRITES[1], [22 * M, 2 * M], WRITES[3]], `the map shows the holes: ${JSON.stringify(after)}`);
});
