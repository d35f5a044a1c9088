// The disk lock (native/flock.c via src/engine/export/disk-lock.ts): an exclusive, non-blocking
// flock on the serving descriptor; a second open file of the same inode (through a symlink or a
// hard link too) is refused naming the holder's pid from /proc/locks; closing the descriptor frees
// it. /proc/locks lines are parsed by device major:minor and inode, waiters ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, linkSync, openSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { diskId, diskLockAvailable, diskLockText, lockDisk, lockHolder } from '../../src/engine/export/disk-lock.js';
import { sparseFile, tmpDir } from '../helpers/tmp.js';
import { skipOrFail } from '../helpers/tools.js';

test('lockHolder: matches device major:minor (hex) and inode, skips waiters', () => {
  const dev = (0xfdn << 8n) | 0x01n; // 253:1
  const text = [
    '1: POSIX  ADVISORY  WRITE 111 fd:01:42 0 EOF',
    '2: FLOCK  ADVISORY  WRITE 222 fd:02:1234 0 EOF',
    '2: -> FLOCK  ADVISORY  WRITE 333 fd:01:1234 0 EOF',
    '3: FLOCK  ADVISORY  WRITE 444 fd:01:1234 0 EOF',
    '',
  ].join('\n');
  assert.equal(lockHolder(text, { dev, ino: 1234n }), 444);
  assert.equal(lockHolder(text, { dev, ino: 42n }), 111);
  assert.equal(lockHolder(text, { dev, ino: 9n }), null);
  const bigDev = (0x103n << 8n) | 0x2n | (0x1000n << 32n); // major 0x1103 (high bits above 32), minor 2
  assert.equal(lockHolder('7: FLOCK  ADVISORY  WRITE 555 1103:02:77 0 EOF\n', { dev: bigDev, ino: 77n }), 555);
});

test('lockDisk: one holder per inode; symlink and hard link refused naming this pid; close frees it', async (t) => {
  if (!diskLockAvailable) {
    skipOrFail(t, `disk lock unavailable: ${diskLockText} (npm install builds it with node-gyp)`);
    return;
  }
  const dir = tmpDir(t, 'dst-lock-');
  const disk = sparseFile(join(dir, 'disk.img'), 1 << 20);
  symlinkSync(disk, join(dir, 'sym.img'));
  linkSync(disk, join(dir, 'hard.img'));
  const a = openSync(disk, 'r+');
  assert.equal(await lockDisk(a, disk, 'a'), true);
  for (const other of ['sym.img', 'hard.img', 'disk.img']) {
    const b = openSync(join(dir, other), 'r+');
    try {
      await assert.rejects(lockDisk(b, join(dir, other), 'b'), (err: Error & { code?: string; errno?: string }) => {
        assert.equal(err.code, 'DST_ERR_BUSY');
        assert.match(err.message, new RegExp(`node b: disk .*${other} is already served by this engine \\(pid ${process.pid}\\)`));
        return true;
      });
    } finally {
      closeSync(b);
    }
  }
  const id = (await diskId(join(dir, 'sym.img')))!;
  assert.equal(id.real, disk, 'the real path behind the symlink');
  closeSync(openSync(disk, 'r')); // closing another descriptor of the file keeps the lock (it is a's)
  const c = openSync(join(dir, 'hard.img'), 'r+');
  t.after(() => closeSync(c));
  await assert.rejects(lockDisk(c, disk, 'c'), /already served/);
  closeSync(a);
  assert.equal(await lockDisk(c, disk, 'c'), true, 'closing the holder frees the disk');
});
