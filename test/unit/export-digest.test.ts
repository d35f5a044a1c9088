// The export's DIGEST (digest.ts): SHA-256 of a range of a real file through a FileBackend equals
// node:crypto's over the same bytes, read in pieces of at most 1 MiB (bounded memory).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileBackend, type Backend } from '../../src/engine/export/backend.js';
import { DIGEST_PIECE, digestRange } from '../../src/engine/export/digest.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

for (const inline of [true, false]) {
  test(`digestRange (${inline ? 'on the event loop' : 'on the libuv pool'}) equals sha256 of the file's bytes, in pieces of at most 1 MiB`, async (t) => {
    const bytes = randomBytes(5 * MiB + 777);
    const path = join(tmpDir(t, 'dst-digest-'), 'disk.img');
    await writeFile(path, bytes);
    const file = await FileBackend.open(path, true, { inline });
    t.after(() => file.close());
    const reads: [number, number][] = [];
    const recording: Backend = {
      read: (offset, length) => { reads.push([offset, length]); return file.read(offset, length); },
      write: (o, d, f) => file.write(o, d, f),
      flush: () => file.flush(),
      trim: (o, l, f) => file.trim(o, l, f),
      writeZeroes: (o, l, f, z) => file.writeZeroes(o, l, f, z),
      extents: (o, l) => file.extents(o, l),
      fastZero: () => file.fastZero(),
      close: () => file.close(),
    };

    // a range spanning several pieces, starting and ending unaligned
    const offset = 4097;
    const length = 3 * MiB + 12345;
    const got = await digestRange(recording, offset, length);
    assert.equal(got.length, 32);
    assert.deepEqual(got, sha256(bytes.subarray(offset, offset + length)));
    assert.deepEqual(reads, [[offset, MiB], [offset + MiB, MiB], [offset + 2 * MiB, MiB], [offset + 3 * MiB, 12345]],
      'consecutive pieces of at most DIGEST_PIECE bytes');
    assert.equal(DIGEST_PIECE, MiB);

    // a small unaligned range: one piece
    reads.length = 0;
    assert.deepEqual(await digestRange(recording, 5 * MiB + 3, 700), sha256(bytes.subarray(5 * MiB + 3, 5 * MiB + 703)));
    assert.deepEqual(reads, [[5 * MiB + 3, 700]]);

    // the whole file, an exact multiple of nothing
    assert.deepEqual(await digestRange(file, 0, bytes.length), sha256(bytes));
  });
}

test('digestRange rejects with the backend\'s error (a read past the end of the file: EIO)', async (t) => {
  const path = join(tmpDir(t, 'dst-digest-'), 'disk.img');
  await writeFile(path, randomBytes(4096));
  const file = await FileBackend.open(path, true);
  t.after(() => file.close());
  await assert.rejects(digestRange(file, 0, 8192), (e: NodeJS.ErrnoException) => e.code === 'EIO');
});
