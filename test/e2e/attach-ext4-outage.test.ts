// `dst attach --method fuse` carries an ext4 filesystem through a SIGKILLed and restarted export:
// attach → mkfs.ext4 → mount → 40 files of 4 MiB, each fsync'ed and hashed, while the export
// engine is killed and restarted within the policy window → the writer sees no error, the kernel
// logs no I/O error on the device → umount → fsck.ext4 -fn clean → drop caches → remount → every
// hash matches → detach → the export's own file, loop-mounted here, holds the same files →
// nothing is left behind (loop devices, mounts, nbdfuse).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { attachGuard, dropCaches, ioErrorLines, kernelLog, requireFuseAttach, settledLeftovers } from '../helpers/attach.js';
import { runOk, run, sleep, waitFor } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import type { AttachmentShow, NodeShow, StatusShow } from '../../src/engine/types.js';

const FILES = 40;
const FILE_SIZE = 4 * 1024 * 1024;

async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

test('attach (fuse): ext4 rides out a SIGKILLed and restarted export; fsck clean, hashes match, nothing left', { timeout: 280_000 }, async (t) => {
  if (!requireFuseAttach(t)) return;
  const guard = attachGuard(t);
  const pair = await startPair(t, { size: 320 * 1024 * 1024, fixedPort: true });
  const work = tmpDir(t, 'dst-att-');
  guard.dirs.push(pair.rem.dir, pair.exp.dir, work);
  const mnt = join(work, 'mnt');
  const check = join(work, 'check');
  mkdirSync(mnt);
  mkdirSync(check);
  const events = await pair.rem.events({ node: pair.remoteName });

  // attach: text mode prints only the device path
  const r = await pair.rem.dst(['attach', pair.remoteName, '--method', 'fuse'], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `dst attach: ${r.stderr}`);
  const device = r.stdout.trim();
  assert.match(r.stdout, /^\/dev\/loop\d+\n$/, 'attach prints only the device path');
  const ev = await events.waitForEvent('attached', pair.remoteName, 10_000);
  assert.equal(ev.device, device);
  assert.equal(ev.method, 'fuse');
  const show = await pair.show();
  assert.deepEqual(show.attachment, { device, method: 'fuse', state: 'attached' } satisfies AttachmentShow);
  const status = await pair.rem.dstJson<StatusShow>(['status']);
  assert.deepEqual(status.nodes.find((n) => n.name === pair.remoteName)?.attachment, show.attachment);
  assert.equal((await runOk('blockdev', ['--getss', device])).stdout.trim(), '4096', 'logical sector size 4096');
  assert.equal((await runOk('blockdev', ['--getro', device])).stdout.trim(), '0');

  const klogBefore = await kernelLog();
  const errorsBefore = klogBefore ? ioErrorLines(klogBefore, device).length : 0;

  await runOk('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device], { timeoutMs: 120_000 });
  await runOk('mount', [device, mnt], { timeoutMs: 60_000 });
  guard.mounted(mnt);

  // the writer: 40 files, each written, fsync'ed and hashed; progress tells the killer when to strike
  const hashes = new Map<string, string>();
  let written = 0;
  const writer = (async () => {
    for (let i = 0; i < FILES; i++) {
      const name = `f${String(i).padStart(2, '0')}.bin`;
      const data = randomBytes(FILE_SIZE);
      const fh = await open(join(mnt, name), 'w');
      try {
        await fh.write(data, 0, data.length, 0);
        await fh.sync();
      } finally {
        await fh.close();
      }
      hashes.set(name, createHash('sha256').update(data).digest('hex'));
      written = i + 1;
    }
  })();
  const writerResult = writer.then(() => null, (err: unknown) => err);

  // strike once the writer is well under way, restart 3 s later (well inside resend-timeout × (max-resends + 1))
  await waitFor('the writer to get going', () => written >= 4 || hashes.size === FILES, 60_000, 20);
  const killedWhile = written;
  await pair.exp.kill('SIGKILL');
  await sleep(3000);
  await pair.exp.restart({ config: pair.exportConfig });
  await pair.exp.waitForState(pair.exportName, 'listening', 15_000);

  const err = await writerResult;
  assert.equal(err, null, `the writer failed: ${String(err)}`);
  assert.equal(hashes.size, FILES);
  assert.ok(killedWhile < FILES, `the export died while the writer ran (${killedWhile} of ${FILES} files done)`);
  const after = await pair.show();
  assert.equal(after.stats.failed, 0, `no transaction failed (${JSON.stringify(after.stats)})`);
  assert.ok(after.stats.reconnects >= 1, 'the remote reconnected');
  assert.equal(after.attachment?.state, 'attached', 'the attachment is still attached');
  t.diagnostic(`killed after ${killedWhile} of ${FILES} files; remote stats ${JSON.stringify(after.stats)}`);
  assert.equal(events.records.filter((e) => e.event === 'attach-broken').length, 0, 'no attach-broken event');

  const klogAfter = await kernelLog();
  if (klogAfter) {
    const errs = ioErrorLines(klogAfter, device);
    assert.equal(errs.length, errorsBefore, `kernel log shows I/O errors on ${device}:\n${errs.slice(errorsBefore).join('\n')}`);
  } else {
    t.diagnostic('dmesg is not readable here; the kernel log check was skipped');
  }

  // umount → fsck clean → drop caches → remount → every hash matches
  await runOk('umount', [mnt], { timeoutMs: 120_000 });
  guard.unmounted(mnt);
  const fsck = await run('fsck.ext4', ['-fn', device], { timeoutMs: 120_000 });
  assert.equal(fsck.code, 0, `fsck.ext4 -fn ${device}: exit ${fsck.code}\n${fsck.stdout}\n${fsck.stderr}`);
  dropCaches(t);
  await runOk('mount', [device, mnt], { timeoutMs: 60_000 });
  guard.mounted(mnt);
  for (const [name, sum] of hashes) assert.equal(await sha256File(join(mnt, name)), sum, `${name} after remount`);
  await runOk('umount', [mnt], { timeoutMs: 120_000 });
  guard.unmounted(mnt);

  // detach: nothing of the attachment is left
  const det = await pair.rem.dstJson<{ name: string; device: string; method: string }>(['detach', pair.remoteName], { timeoutMs: 120_000 });
  assert.deepEqual(det, { name: pair.remoteName, device, method: 'fuse' });
  await events.waitForEvent('detached', pair.remoteName, 10_000);
  assert.equal((await pair.show() as NodeShow).attachment, null);
  assert.deepEqual(await settledLeftovers([pair.rem.dir]), [], 'detach left something behind');

  // the export's own file holds the same files
  await runOk('mount', ['-o', 'loop,ro', pair.disk, check], { timeoutMs: 60_000 });
  guard.mounted(check);
  for (const [name, sum] of hashes) assert.equal(await sha256File(join(check, name)), sum, `${name} in the export's file`);
  await runOk('umount', [check], { timeoutMs: 60_000 });
  guard.unmounted(check);

  assert.deepEqual(await settledLeftovers(guard.dirs), [], 'something was left behind');
  const losetup = await runOk('losetup', ['-a']);
  for (const d of guard.dirs) assert.ok(!losetup.stdout.includes(d), `losetup -a still lists ${d}:\n${losetup.stdout}`);
});
