// A read-only grant attaches as a read-only device: blockdev --getro = 1, `mount -o ro` works and
// shows the export's files, writes (through the filesystem or to the device) fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { attachGuard, requireFuseAttach, settledLeftovers } from '../helpers/attach.js';
import { run, runOk } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import type { AttachmentShow, NodeShow } from '../../src/engine/types.js';

test('attach (fuse) of a read-only grant: blockdev --getro = 1, mount -o ro works, writes fail', { timeout: 120_000 }, async (t) => {
  if (!requireFuseAttach(t)) return;
  const guard = attachGuard(t);
  const work = tmpDir(t, 'dst-atr-');
  const seed = join(work, 'seed');
  const mnt = join(work, 'mnt');
  mkdirSync(seed);
  mkdirSync(mnt);
  writeFileSync(join(seed, 'hello.txt'), 'read-only hello\n');

  const pair = await startPair(t, { size: 64 * 1024 * 1024, perm: 'r' });
  guard.dirs.push(pair.rem.dir, pair.exp.dir, work);
  // The export's file gets a filesystem with one file before anyone reads it (4 KiB blocks: the
  // attached device has 4096-byte sectors).
  await runOk('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', seed, pair.disk], { timeoutMs: 60_000 });
  assert.equal((await pair.show()).permissions, 'r');

  const att = await pair.rem.dstJson<AttachmentShow>(['attach', pair.remoteName, '--method', 'fuse'], { timeoutMs: 120_000 });
  assert.match(att.device, /^\/dev\/loop\d+$/);
  assert.equal(att.method, 'fuse');
  assert.equal(att.state, 'attached');
  assert.equal((await runOk('blockdev', ['--getro', att.device])).stdout.trim(), '1', 'the device is read-only');

  // writing to the device itself fails
  const dd = await run('dd', ['if=/dev/zero', `of=${att.device}`, 'bs=4096', 'count=1', 'oflag=direct'], { timeoutMs: 30_000 });
  assert.notEqual(dd.code, 0, `dd to a read-only device must fail: ${dd.stderr}`);

  // a plain (rw) mount is refused or falls back; -o ro works
  await runOk('mount', ['-o', 'ro', att.device, mnt], { timeoutMs: 60_000 });
  guard.mounted(mnt);
  assert.equal(readFileSync(join(mnt, 'hello.txt'), 'utf8'), 'read-only hello\n');
  assert.throws(() => writeFileSync(join(mnt, 'new.txt'), 'x'), (e: NodeJS.ErrnoException) => e.code === 'EROFS', 'writing a file fails with EROFS');
  assert.throws(() => writeFileSync(join(mnt, 'hello.txt'), 'x'), (e: NodeJS.ErrnoException) => e.code === 'EROFS' || e.code === 'EACCES');
  const show = await pair.rem.dstJson<NodeShow>(['node', 'show', pair.remoteName]);
  assert.equal(show.stats.failed, 0);

  await runOk('umount', [mnt], { timeoutMs: 60_000 });
  guard.unmounted(mnt);
  await pair.rem.dstJson(['detach', pair.remoteName], { timeoutMs: 120_000 });
  assert.deepEqual(await settledLeftovers(guard.dirs), [], 'something was left behind');
});
