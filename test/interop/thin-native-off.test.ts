// Issue 16: with the export's native file ops switched off (DST_NATIVE=0 in its engine's
// environment) everything stays correct and only space is lost: `nbdinfo --map` reports the whole
// device as one data extent, TRIM is an accepted hint (the data stays, nothing is freed), WRITE_ZEROES
// writes the zeroes, and nbdcopy of the device equals the export's file and the data written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { readFileAt, sameBytes } from '../helpers/legs.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { M, allocated, checkCovers, dataAt, dataRanges, fileIsZero, nbdinfoMap, thinFile } from '../helpers/thin.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTools, runOk } from '../helpers/tools.js';

const SIZE = 64 * M;

test('native file ops off: extents are all data, TRIM a hint, zeroes written, every byte right', { timeout: 120_000 }, async (t) => {
  if (!requireTools(t, [['nbdinfo', 'libnbd-bin'], ['nbdcopy', 'libnbd-bin']])) return;
  const disk = thinFile(t, SIZE, [4 * M, 40 * M], M);
  const pair = await startPair(t, { disk, exportEnv: { DST_NATIVE: '0' } });
  assert.match((await pair.exp.status()).fileOps, /^fallback/, 'the export engine runs without native file ops');

  const map = await nbdinfoMap(pair.uri);
  checkCovers(map, SIZE, 'nbdinfo --map');
  assert.deepEqual(dataRanges(map), [[0, SIZE]], `one data extent: ${JSON.stringify(map)}`);

  const nbd = await NbdClient.connect(pair.socket);
  t.after(() => nbd.close());
  await nbd.write(20 * M, dataAt(20 * M, M));
  await nbd.flush();
  const before = allocated(disk);
  await nbd.trim(4 * M, M);
  await nbd.writeZeroes(40 * M, M);
  await nbd.flush();
  assert.ok((await nbd.read(4 * M, M)).equals(dataAt(4 * M, M)), 'TRIM was a hint: the data is still there');
  assert.ok((await nbd.read(40 * M, M)).equals(Buffer.alloc(M)), 'the zeroed range reads zeroes through NBD');
  assert.ok(fileIsZero(disk, 40 * M, M), 'the zeroes were written to the export file');
  assert.ok(allocated(disk) >= before, `nothing was freed: ${before} → ${allocated(disk)}`);
  assert.ok(readFileAt(disk, 20 * M, M).equals(dataAt(20 * M, M)), 'the written data is in the export file');

  const copy = join(tmpDir(t, 'dst-thin-off-'), 'copy.img');
  writeFileSync(copy, '');
  await runOk('nbdcopy', [pair.uri, copy], { timeoutMs: 60_000 });
  assert.ok(sameBytes(disk, copy, SIZE), 'nbdcopy of the device equals the export file');
  assert.ok(readFileAt(copy, 4 * M, M).equals(dataAt(4 * M, M)) && readFileAt(copy, 20 * M, M).equals(dataAt(20 * M, M)),
    'the copy holds the data');
  for (const [at, len] of [[0, 4 * M], [5 * M, 15 * M], [21 * M, SIZE - 21 * M]] as const) {
    assert.ok(fileIsZero(copy, at, len), `the copy reads zeroes over [${at}, ${at + len})`);
  }
});
