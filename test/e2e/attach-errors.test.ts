// Clear refusals: attach of an unknown node, an export node, an unstarted node; a double attach;
// detach of a node that is not attached; detach, `node stop` and `node del` while the device is
// mounted. Then --force unmounts and detaches, leaving nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { attachGuard, mountsUnder, requireFuseAttach, settledLeftovers } from '../helpers/attach.js';
import { runOk } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';
import type { AttachmentShow, NodeShow } from '../../src/engine/types.js';

test('attach/detach refuse clearly: unknown, export, unstarted, double attach, not attached, mounted', { timeout: 180_000 }, async (t) => {
  if (!requireFuseAttach(t)) return;
  const guard = attachGuard(t);
  const work = tmpDir(t, 'dst-ate-');
  const mnt = join(work, 'mnt');
  mkdirSync(mnt);
  const pair = await startPair(t, { size: 64 * 1024 * 1024 });
  guard.dirs.push(pair.rem.dir, pair.exp.dir, work);
  const { rem, exp, remoteName } = pair;

  // unknown node
  let f = await rem.dstFail(['attach', 'nope'], 1);
  assert.equal(f.error?.code, 'DST_ERR_NOT_FOUND');
  assert.match(f.error!.message, /attach nope: no node named "nope"/);
  f = await rem.dstFail(['detach', 'nope'], 1);
  assert.equal(f.error?.code, 'DST_ERR_NOT_FOUND');

  // an export node
  f = await exp.dstFail(['attach', pair.exportName], 1);
  assert.equal(f.error?.code, 'DST_ERR_INVALID');
  assert.match(f.error!.message, /export node/);

  // an unstarted remote node
  await rem.dstJson(['node', 'add', 'idle', '--remote', pair.listen]);
  f = await rem.dstFail(['attach', 'idle'], 1);
  assert.equal(f.error?.code, 'DST_ERR_STATE');
  assert.match(f.error!.message, /configured/);
  assert.match(f.error!.message, /dst node start idle/);

  // syntax: an unknown method is a usage error (exit 2)
  f = await rem.dstFail(['attach', remoteName, '--method', 'floppy'], 2);
  assert.match(f.error?.message ?? f.stderr, /--method must be auto, nbd or fuse/);

  // nbd without the kernel module: says what is missing and how to get it
  if (!existsSync('/dev/nbd0')) {
    f = await rem.dstFail(['attach', remoteName, '--method', 'nbd'], 1);
    assert.match(f.error!.message, /method nbd is not available: .*(nbd-client|\/dev\/nbd0)/);
    assert.match(f.error!.message, /modprobe nbd|apt-get install nbd-client/);
    assert.equal((await pair.show()).attachment, null, 'a refused attach leaves no attachment');
  }

  // detach of a node that is not attached
  f = await rem.dstFail(['detach', remoteName], 1);
  assert.equal(f.error?.code, 'DST_ERR_NOT_FOUND');
  assert.match(f.error!.message, /is not attached/);

  // attach, then attach again
  const att = await rem.dstJson<AttachmentShow>(['attach', remoteName], { timeoutMs: 120_000 });
  assert.equal(att.state, 'attached');
  f = await rem.dstFail(['attach', remoteName], 1);
  assert.equal(f.error?.code, 'DST_ERR_EXISTS');
  assert.match(f.error!.message, new RegExp(`already attached as ${att.device}`));

  // mounted: detach, node stop and node del are refused; nothing changes
  await runOk('mkfs.ext4', ['-q', '-F', att.device], { timeoutMs: 60_000 });
  await runOk('mount', [att.device, mnt], { timeoutMs: 60_000 });
  guard.mounted(mnt);
  f = await rem.dstFail(['detach', remoteName], 1);
  assert.equal(f.error?.code, 'DST_ERR_BUSY');
  assert.match(f.error!.message, new RegExp(`mounted on ${mnt}`));
  assert.match(f.error!.message, /--force/);
  f = await rem.dstFail(['node', 'stop', remoteName], 1);
  assert.equal(f.error?.code, 'DST_ERR_BUSY');
  assert.match(f.error!.message, new RegExp(`attached as ${att.device}, which is mounted on ${mnt}`));
  f = await rem.dstFail(['node', 'del', remoteName], 1);
  assert.match(f.error!.message, /stop it first/);
  const still = await pair.show();
  assert.equal(still.state, 'ready');
  assert.deepEqual(still.attachment, { device: att.device, method: 'fuse', state: 'attached' });
  assert.equal(mountsUnder([mnt]).length, 1, 'still mounted');

  // --force: unmounts, then detaches
  const det = await rem.dstJson<{ device: string }>(['detach', remoteName, '--force'], { timeoutMs: 120_000 });
  assert.equal(det.device, att.device);
  guard.unmounted(mnt);
  assert.deepEqual(mountsUnder([mnt]), [], '--force unmounted the filesystem');
  assert.deepEqual(await settledLeftovers([rem.dir]), []);

  // node stop --force of an attached, mounted node: unmounts, detaches, stops
  const att2 = await rem.dstJson<AttachmentShow>(['attach', remoteName], { timeoutMs: 120_000 });
  await runOk('mount', [att2.device, mnt], { timeoutMs: 60_000 });
  guard.mounted(mnt);
  const stopped = await rem.dstJson<NodeShow>(['node', 'stop', remoteName, '--force'], { timeoutMs: 120_000 });
  guard.unmounted(mnt);
  assert.equal(stopped.state, 'configured');
  assert.equal(stopped.attachment, null);
  assert.deepEqual(mountsUnder([mnt]), []);
  assert.deepEqual(await settledLeftovers(guard.dirs), [], 'something was left behind');
});

test('engine shutdown detaches (unmounting what is mounted); a SIGKILLed engine\'s leftovers are cleaned at its next start', { timeout: 180_000 }, async (t) => {
  if (!requireFuseAttach(t)) return;
  const guard = attachGuard(t);
  const work = tmpDir(t, 'dst-ats-');
  const mnt = join(work, 'mnt');
  mkdirSync(mnt);
  const pair = await startPair(t, { size: 64 * 1024 * 1024 });
  guard.dirs.push(pair.rem.dir, pair.exp.dir, work);
  const { rem, remoteName } = pair;
  const config = join(rem.dir, 'rem.conf');
  await rem.dstJson(['config', 'save', config]);

  // SIGKILL with an attached, unmounted device: loop device, FUSE mount and nbdfuse outlive it
  const att = await rem.dstJson<AttachmentShow>(['attach', remoteName], { timeoutMs: 120_000 });
  assert.ok(existsSync(join(rem.stateDir, 'attachments', `${remoteName}.json`)), 'the attachment is recorded in the state dir');
  await rem.kill('SIGKILL');
  assert.notDeepEqual(await settledLeftovers([rem.dir], 500), [], 'a killed engine leaves its attachment');
  await rem.restart({ config });
  await rem.waitForLog(/leftover cleaned/, 20_000);
  assert.deepEqual(await settledLeftovers([rem.dir]), [], 'the restarted engine cleaned the leftovers');
  assert.ok(!existsSync(join(rem.stateDir, 'attachments', `${remoteName}.json`)), 'the record is gone');
  await rem.waitForState(remoteName, 'ready', 20_000);
  assert.equal((await pair.show()).attachment, null, 'leftovers are cleaned, not re-made');

  // SIGTERM with a mounted device: the engine unmounts and detaches before it exits
  const att2 = await rem.dstJson<AttachmentShow>(['attach', remoteName], { timeoutMs: 120_000 });
  assert.match(att2.device, /^\/dev\/loop\d+$/);
  void att;
  await runOk('mkfs.ext4', ['-q', '-F', att2.device], { timeoutMs: 60_000 });
  await runOk('mount', [att2.device, mnt], { timeoutMs: 60_000 });
  guard.mounted(mnt);
  const exit = await rem.kill('SIGTERM', 60_000);
  assert.equal(exit?.code, 0, `the engine exits cleanly on SIGTERM (${JSON.stringify(exit)})`);
  guard.unmounted(mnt);
  assert.deepEqual(mountsUnder([mnt]), [], 'shutdown unmounted the filesystem');
  assert.deepEqual(await settledLeftovers(guard.dirs), [], 'shutdown left something behind');
  assert.match(rem.log(), /unmounting .*mnt/);
});
