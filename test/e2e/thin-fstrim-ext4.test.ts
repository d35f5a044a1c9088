// Issue 16: `fstrim` on ext4 mounted through `dst attach` gives the space back on the export: a
// 64 MiB file is written and synced (the export file grows by it), deleted, and fstrim's discards
// (loop → nbdfuse → NBD TRIM → remote node → export) punch holes in the export's file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { attachGuard, requireFuseAttach } from '../helpers/attach.js';
import { startPair } from '../helpers/cluster.js';
import { M, allocated, requirePunchHole } from '../helpers/thin.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTool, runOk, skipOrFail } from '../helpers/tools.js';

const FILE = 64 * M;

test('fstrim on ext4 through dst attach frees the deleted file\'s space in the export file', { timeout: 240_000 }, async (t) => {
  if (!requireFuseAttach(t) || !requireTool(t, 'fstrim', 'util-linux')) return;
  if (!(await requirePunchHole(t))) return;
  const guard = attachGuard(t);
  const pair = await startPair(t, { size: 256 * M });
  const work = tmpDir(t, 'dst-fstrim-');
  guard.dirs.push(pair.rem.dir, pair.exp.dir, work);
  const mnt = join(work, 'mnt');
  mkdirSync(mnt);

  const a = await pair.rem.dst(['attach', pair.remoteName, '--method', 'fuse'], { timeoutMs: 120_000 });
  assert.equal(a.code, 0, `dst attach: ${a.stderr}`);
  const device = a.stdout.trim();
  const discardMax = Number(readFileSync(`/sys/block/${basename(device)}/queue/discard_max_bytes`, 'utf8'));
  if (!(discardMax > 0)) {
    skipOrFail(t, `${device} (dst attach --method fuse) takes no discards: discard_max_bytes is ${discardMax}`);
    return;
  }
  await runOk('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device], { timeoutMs: 120_000 });
  await runOk('mount', [device, mnt], { timeoutMs: 60_000 });
  guard.mounted(mnt);
  const empty = allocated(pair.disk);

  const file = join(mnt, 'big.bin');
  const fh = await open(file, 'w');
  try {
    for (let at = 0; at < FILE; at += 4 * M) await fh.write(randomBytes(4 * M), 0, 4 * M, at);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await runOk('sync', ['-f', mnt], { timeoutMs: 60_000 });
  const full = allocated(pair.disk);
  assert.ok(full - empty >= FILE, `the export file grew by the ${FILE} bytes written (from ${empty} to ${full})`);

  rmSync(file);
  await runOk('sync', ['-f', mnt], { timeoutMs: 60_000 });
  const trim = await runOk('fstrim', ['-v', mnt], { timeoutMs: 120_000 });
  const freed = full - allocated(pair.disk);
  const msg = `fstrim (${trim.stdout.trim()}) freed ${freed} bytes (${(freed / M).toFixed(1)} MiB) of the export file `
    + `after deleting a ${FILE / M} MiB file; allocated: ${empty} empty, ${full} with the file, ${allocated(pair.disk)} after fstrim`;
  t.diagnostic(msg);
  console.log(`thin-fstrim-ext4: ${msg}`);
  assert.ok(freed >= FILE - 8 * M, `fstrim freed ${freed} bytes on the export, expected about ${FILE}`);

  await runOk('umount', [mnt], { timeoutMs: 120_000 });
  guard.unmounted(mnt);
  await pair.rem.dstJson(['detach', pair.remoteName], { timeoutMs: 120_000 });
});
