// Issue 16: an export on a block device (a loop device over a sparse file, which takes discards):
// TRIM through the remote node reaches the device as BLKDISCARD, so the loop device punches a
// hole in its backing file (whose allocated blocks drop by the range) and the range reads zeroes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { K, M, allocated, dataAt, fileIsZero, loopDevice, requirePunchHole, thinFile } from '../helpers/thin.js';

const DATA = 16 * M;
const TRIM_AT = 4 * M;
const TRIM_LEN = 8 * M;

test('TRIM through the remote node reaches a block device export as a discard', { timeout: 60_000 }, async (t) => {
  if (!(await requirePunchHole(t))) return;
  const backing = thinFile(t, 64 * M, [0], DATA);
  const dev = await loopDevice(t, backing);
  if (!dev) return;
  const pair = await startPair(t, { disk: dev });
  assert.equal((await pair.show()).size, 64 * M);
  const nbd = await NbdClient.connect(pair.socket);
  t.after(() => nbd.close());
  assert.ok((await nbd.read(0, DATA)).equals(dataAt(0, DATA)), 'the device serves the backing file\'s data');

  const before = allocated(backing);
  await nbd.trim(TRIM_AT, TRIM_LEN);
  await nbd.flush();
  const freed = before - allocated(backing);
  t.diagnostic(`TRIM of ${TRIM_LEN} bytes on ${dev} freed ${freed} bytes of its backing file`);
  assert.ok(Math.abs(freed - TRIM_LEN) <= 64 * K, `the loop's backing file lost the trimmed ${TRIM_LEN} bytes: freed ${freed}`);
  assert.ok((await nbd.read(TRIM_AT, TRIM_LEN)).equals(Buffer.alloc(TRIM_LEN)), 'the discarded range reads zeroes through NBD');
  assert.ok(fileIsZero(backing, TRIM_AT, TRIM_LEN), 'and in the backing file');
  assert.ok((await nbd.read(0, TRIM_AT)).equals(dataAt(0, TRIM_AT)), 'the data before the range is untouched');
  const tail = DATA - TRIM_AT - TRIM_LEN;
  assert.ok((await nbd.read(TRIM_AT + TRIM_LEN, tail)).equals(dataAt(TRIM_AT + TRIM_LEN, tail)), 'the data after the range is untouched');
});
