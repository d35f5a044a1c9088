// The nbd method end to end (nbd-client + nbd.ko). Where the kernel module is missing (no
// /dev/nbd0: many containers and CI machines) this test skips, naming the module; the fuse
// method's tests cover the rest, and test/unit/attach-nbd-method.test.ts covers this method's
// command lines and supervision without the module.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { attachGuard, dropCaches, mountsUnder } from '../helpers/attach.js';
import { requireRoot, requireTools, run, runOk, waitFor } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import type { AttachmentShow } from '../../src/engine/types.js';
import { nbdClientConnectArgs } from '../../src/engine/attach/argv.js';

test('attach --method nbd: nbd-client + nbd.ko, ext4 round trip, detach disconnects', { timeout: 180_000 }, async (t) => {
  if (!existsSync('/dev/nbd0')) {
    t.skip('the nbd kernel module (nbd.ko) is not loaded: /dev/nbd0 does not exist (modprobe nbd)');
    return;
  }
  if (!requireRoot(t, 'dst attach --method nbd needs root')) return;
  if (!requireTools(t, [['nbd-client', 'nbd-client'], ['mkfs.ext4', 'e2fsprogs'], ['fsck.ext4', 'e2fsprogs'], ['mount', 'util-linux']])) return;
  const guard = attachGuard(t);
  const work = tmpDir(t, 'dst-atn-');
  const mnt = join(work, 'mnt');
  mkdirSync(mnt);
  const pair = await startPair(t, { size: 128 * 1024 * 1024 });
  guard.dirs.push(pair.rem.dir, pair.exp.dir, work);
  let device: string | null = null;
  t.after(async () => {
    if (device && (await run('nbd-client', ['-c', device])).code === 0) await run('nbd-client', ['-d', device]);
  });

  const att = await pair.rem.dstJson<AttachmentShow>(['attach', pair.remoteName, '--method', 'nbd'], { timeoutMs: 120_000 });
  device = att.device;
  assert.match(att.device, /^\/dev\/nbd\d+$/);
  assert.deepEqual({ method: att.method, state: att.state }, { method: 'nbd', state: 'attached' });
  assert.equal((await run('nbd-client', ['-c', att.device])).code, 0, 'connected');

  await runOk('mkfs.ext4', ['-q', '-F', att.device], { timeoutMs: 60_000 });
  await runOk('mount', [att.device, mnt], { timeoutMs: 60_000 });
  guard.mounted(mnt);
  const data = randomBytes(8 * 1024 * 1024);
  writeFileSync(join(mnt, 'f.bin'), data);
  await runOk('umount', [mnt], { timeoutMs: 60_000 });
  guard.unmounted(mnt);
  const fsck = await run('fsck.ext4', ['-fn', att.device], { timeoutMs: 60_000 });
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  dropCaches(t);
  await runOk('mount', [att.device, mnt], { timeoutMs: 60_000 });
  guard.mounted(mnt);
  assert.equal(createHash('sha256').update(readFileSync(join(mnt, 'f.bin'))).digest('hex'), createHash('sha256').update(data).digest('hex'));
  await runOk('umount', [mnt], { timeoutMs: 60_000 });
  guard.unmounted(mnt);

  await pair.rem.dstJson(['detach', pair.remoteName], { timeoutMs: 120_000 });
  await waitFor(`${att.device} disconnected`, async () => (await run('nbd-client', ['-c', att.device])).code === 1, 10_000);
  assert.deepEqual(mountsUnder(guard.dirs), []);
});

test('nbd method without nbd.ko: the exact nbd-client command line negotiates with the node\'s NBD socket', { timeout: 60_000 }, async (t) => {
  if (!requireTools(t, [['nbd-client', 'nbd-client']])) return;
  const pair = await startPair(t, { size: 64 * 1024 * 1024 });
  const device = existsSync('/dev/nbd0') ? null : '/dev/nbd0';
  if (device === null) {
    t.skip('nbd.ko is loaded here: the test above attaches for real');
    return;
  }
  const args = nbdClientConnectArgs({ socket: pair.socket, exportName: pair.remoteName, device, readonly: false });
  const r = await run('nbd-client', args, { timeoutMs: 30_000 });
  // The option parsing and the NBD handshake succeed (size reported); only the netlink step,
  // which needs nbd.ko, fails.
  assert.match(r.stdout, /size = 64MB/, `nbd-client ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /nbd netlink family|nbd module/);
  const wrong = await run('nbd-client', nbdClientConnectArgs({ socket: pair.socket, exportName: 'nope', device, readonly: false }), { timeoutMs: 30_000 });
  assert.notEqual(wrong.code, 0);
  assert.doesNotMatch(wrong.stdout, /size = /, 'an unknown export name is refused at the handshake');
});
