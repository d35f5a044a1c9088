// ext4 on an attached two-leg mirror (`dst attach --method fuse`): leg 1's export engine is
// SIGKILLed during fsync'd writes and restarted; the writer sees no error, fsck is clean, every
// file hash matches after a remount, and once leg 1 has resynced both legs are byte-identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { attachGuard, dropCaches, requireFuseAttach } from '../helpers/attach.js';
import { layoutDevice, sameBytes, startLegEngines, waitLegStates } from '../helpers/legs.js';
import { run, runOk, sleep, waitFor } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import type { NodeShow } from '../../src/engine/types.js';

const M = 1024 * 1024;
const FILES = 24;
const FILE_SIZE = 2 * M;

test('ext4 on an attached mirror: a leg killed and returned during fsync\'d writes', { timeout: 280_000 }, async (t) => {
  if (!requireFuseAttach(t)) return;
  const guard = attachGuard(t);
  const { engines, legs } = await startLegEngines(t, [132 * M, 132 * M]);
  const { rem } = await layoutDevice(t, legs, ['--layout', 'mirror'], ['--leg-timeout', '1s', '--reconnect-delay', '200ms']);
  await waitLegStates(rem, ['in-sync', 'in-sync'], 60_000);
  const work = tmpDir(t, 'dst-mir-');
  guard.dirs.push(rem.dir, ...engines.map((e) => e.dir), work);
  const mnt = join(work, 'mnt');
  mkdirSync(mnt);

  const r = await rem.dst(['attach', 'vol', '--method', 'fuse'], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `dst attach: ${r.stderr}`);
  const device = r.stdout.trim();
  await runOk('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device], { timeoutMs: 120_000 });
  await runOk('mount', [device, mnt], { timeoutMs: 60_000 });
  guard.mounted(mnt);

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
  })().then(() => null, (err: unknown) => err);

  await waitFor('the writer to get going', () => written >= 3, 60_000, 20);
  await engines[1]!.kill('SIGKILL');
  await sleep(2000);
  await engines[1]!.restart();
  assert.equal(await writer, null, 'the writer saw no error');
  const after = await waitLegStates(rem, ['in-sync', 'in-sync'], 60_000);
  assert.ok(after.legs![1]!.stats.resyncedBytes > 0, 'leg 1 was resynced');

  await runOk('umount', [mnt], { timeoutMs: 120_000 });
  guard.unmounted(mnt);
  const fsck = await run('fsck.ext4', ['-fn', device], { timeoutMs: 120_000 });
  assert.equal(fsck.code, 0, `fsck.ext4 -fn: exit ${fsck.code}\n${fsck.stdout}\n${fsck.stderr}`);
  dropCaches(t);
  await runOk('mount', [device, mnt], { timeoutMs: 60_000 });
  guard.mounted(mnt);
  for (const [name, sum] of hashes) {
    assert.equal(createHash('sha256').update(await readFile(join(mnt, name))).digest('hex'), sum, name);
  }
  await runOk('umount', [mnt], { timeoutMs: 120_000 });
  guard.unmounted(mnt);
  await rem.dstJson(['detach', 'vol'], { timeoutMs: 120_000 });
  const show = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, show.size!), 'both legs identical');
});
