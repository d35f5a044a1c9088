// Issue 16: TRIM through a remote node's NBD socket punches a hole in the export's file: its
// allocated blocks (st_blocks) drop by the trimmed range, the range reads zeroes through NBD and in
// the file, and the data around it is untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { readFileAt } from '../helpers/legs.js';
import { K, M, allocated, dataAt, fileIsZero, requirePunchHole, thinFile } from '../helpers/thin.js';

const DATA = 16 * M;
const TRIM_AT = 4 * M;
const TRIM_LEN = 8 * M;

test('TRIM through the remote node frees the range in the export file, which then reads zeroes', { timeout: 60_000 }, async (t) => {
  if (!(await requirePunchHole(t))) return;
  const disk = thinFile(t, 64 * M, [0], DATA);
  const pair = await startPair(t, { disk });
  const nbd = await NbdClient.connect(pair.socket);
  t.after(() => nbd.close());

  const before = allocated(disk);
  assert.ok(before >= DATA, `the export file holds its ${DATA} bytes of data (allocated ${before})`);
  await nbd.trim(TRIM_AT, TRIM_LEN);
  await nbd.flush();
  const freed = before - allocated(disk);
  t.diagnostic(`TRIM of ${TRIM_LEN} bytes freed ${freed} bytes of the export file`);
  assert.ok(Math.abs(freed - TRIM_LEN) <= 64 * K, `allocated blocks dropped by the trimmed ${TRIM_LEN} bytes: freed ${freed}`);

  assert.ok((await nbd.read(TRIM_AT, TRIM_LEN)).equals(Buffer.alloc(TRIM_LEN)), 'the trimmed range reads zeroes through NBD');
  assert.ok(fileIsZero(disk, TRIM_AT, TRIM_LEN), 'the trimmed range is zeroes in the export file');
  assert.ok((await nbd.read(0, TRIM_AT)).equals(dataAt(0, TRIM_AT)), 'the data before the range is untouched');
  const tail = DATA - TRIM_AT - TRIM_LEN;
  assert.ok((await nbd.read(TRIM_AT + TRIM_LEN, tail)).equals(dataAt(TRIM_AT + TRIM_LEN, tail)), 'the data after the range is untouched');
  assert.ok(readFileAt(disk, TRIM_AT + TRIM_LEN, tail).equals(dataAt(TRIM_AT + TRIM_LEN, tail)), 'and so is the file');
});
