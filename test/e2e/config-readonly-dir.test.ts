// A config directory that cannot be written: a change that grants something (node add) is not
// done at all and says which file it could not save; a change that revokes access (security del)
// takes effect anyway — the client is refused on its next request — and exits 1 saying it was
// NOT saved, until a later save succeeds. Root ignores directory permissions, so the directory is
// made immutable with chattr +i or, where the filesystem has no such flag (tmpfs), bind-mounted
// onto itself read-only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import { NbdClient, NbdError } from '../helpers/nbd-client.js';
import { blockContent } from '../helpers/blocks.js';
import { onCleanup } from '../helpers/tmp.js';
import { requireRoot, requireTool, run, skipOrFail } from '../helpers/tools.js';
import type { NodeShow, StatusShow } from '../../src/engine/types.js';

const EPERM = 1;

/** Make `dir` unwritable even for root; returns how to undo it, or why it cannot be done here. */
async function makeReadOnly(dir: string): Promise<{ undo: () => Promise<void> } | { why: string }> {
  const chattr = await run('chattr', ['+i', dir]);
  if (chattr.code === 0) return { undo: async () => { await run('chattr', ['-i', dir]); } };
  const bind = await run('mount', ['--bind', dir, dir]);
  if (bind.code !== 0) return { why: `chattr +i: ${chattr.stderr.trim()}; mount --bind: ${bind.stderr.trim()}` };
  const ro = await run('mount', ['-o', 'remount,bind,ro', dir]);
  const undo = async (): Promise<void> => { await run('umount', [dir]); };
  if (ro.code !== 0) {
    await undo();
    return { why: `chattr +i: ${chattr.stderr.trim()}; mount -o remount,bind,ro: ${ro.stderr.trim()}` };
  }
  return { undo };
}

test('read-only config dir: node add refused naming the file; security del revokes anyway', async (t) => {
  if (!requireRoot(t, 'making a directory unwritable for root (chattr +i, mount) needs root')) return;
  if (!requireTool(t, 'chattr', 'e2fsprogs')) return;
  const rem = await startEngine(t);
  const etc = join(rem.dir, 'etc');
  mkdirSync(etc);
  const conf = join(etc, 'dst.conf');
  writeFileSync(conf, '');
  const exp = await startEngine(t, { config: conf });
  const disk = join(exp.dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(4 * 1024 * 1024));
  await exp.dstJson(['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0']);
  await exp.dstJson(['security', 'add', 'vol', '--addr', '127.0.0.1', '--perm', 'rw']);
  const listen = (await exp.dstJson<NodeShow>(['node', 'start', 'vol'])).listen!;
  await rem.dstJson(['node', 'add', 'vol', '--remote', listen]);
  const ready = await rem.dstJson<NodeShow>(['node', 'start', 'vol', '--wait', '10s']);
  const c = await NbdClient.connect(ready.nbd!.socket);
  t.after(() => c.close());
  await c.write(0, blockContent(0, 1));
  const before = readFileSync(conf, 'utf8');

  const ro = await makeReadOnly(etc);
  if ('why' in ro) {
    skipOrFail(t, `cannot make ${etc} read-only for root here: ${ro.why}`);
    return;
  }
  let undone = false;
  const undo = async (): Promise<void> => { if (!undone) { undone = true; await ro.undo(); } };
  onCleanup(t, undo);

  const add = await exp.dstFail(['node', 'add', 'vol2', '--disk', disk, '--listen', '127.0.0.1:0'], 1);
  assert.ok(add.error?.message.includes(conf), `names the file: ${add.error?.message}`);
  assert.match(add.error!.message, /not done/);
  assert.deepEqual((await exp.dstJson<NodeShow[]>(['node', 'list'])).map((n) => n.name), ['vol'], 'vol2 was not added');

  const del = await exp.dstFail(['security', 'del', 'vol', '--addr', '127.0.0.1'], 1);
  assert.ok(del.error?.message.includes(conf), `names the file: ${del.error?.message}`);
  assert.match(del.error!.message, /applied but NOT saved/);
  assert.deepEqual(await exp.dstJson(['security', 'list', 'vol']), [], 'the entry is gone');
  await assert.rejects(c.write(4096, blockContent(1, 1)), (err: unknown) => err instanceof NbdError && err.errno === EPERM,
    'the revoked client is refused on its next request');
  assert.equal((await exp.dstJson<StatusShow>(['status'])).config.unsaved, true);
  assert.equal(readFileSync(conf, 'utf8'), before, 'the file is as it was');

  await undo();
  await exp.dstJson(['config', 'save']);
  assert.equal((await exp.dstJson<StatusShow>(['status'])).config.unsaved, false, 'a later save clears unsaved');
  assert.doesNotMatch(readFileSync(conf, 'utf8'), /allow\[\]/, 'the revocation is saved now');
});
