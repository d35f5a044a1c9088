// What the file backend says about FAST_ZERO (HELLO_REPLY's FAST_ZERO feature comes from it): true
// only with native file ops that punch holes on this disk, probed at open without changing it
// (size and bytes stay); false without native ops, on a read-only disk, and where the probe fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { FileBackend } from '../../src/engine/export/backend.js';
import { fileOps, type FileOps } from '../../src/engine/io/file-ops.js';
import { M, allocated, dataAt, requirePunchHole, thinFile } from '../helpers/thin.js';

test('FileBackend.fastZero(): probed at open, true only where holes can be punched', async (t) => {
  if (!(await requirePunchHole(t))) return;
  const path = thinFile(t, 8 * M, [7 * M], M);
  const size = statSync(path).size;
  const held = allocated(path);

  const native = await FileBackend.open(path, false);
  assert.equal(native.fastZero(), true, 'native file ops on a file system that punches holes');
  await native.close();
  assert.equal(statSync(path).size, size, 'the probe kept the size');
  assert.equal(allocated(path), held, 'and the allocation');
  const ro = await FileBackend.open(path, true);
  assert.equal(ro.fastZero(), false, 'read-only: no zeroes at all');
  assert.ok((await ro.read(7 * M, M)).equals(dataAt(7 * M, M)), 'the probe kept the data');
  await ro.close();

  const off = await FileBackend.open(path, false, { fileOps: null });
  assert.equal(off.fastZero(), false, 'without native file ops');
  await off.close();
  const noPunch: FileOps = { ...fileOps!, punchHole: () => Promise.reject(Object.assign(new Error('EOPNOTSUPP'), { code: 'ENOTSUP' })) };
  const refusing = await FileBackend.open(path, false, { fileOps: noPunch });
  assert.equal(refusing.fastZero(), false, 'a disk that cannot punch holes');
  await refusing.close();
});
