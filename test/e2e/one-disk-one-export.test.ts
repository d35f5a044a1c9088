// One disk, one export: a second export node on the same file through a symlink or a hard link is
// refused at `node add` (at `node start` when it became the same file later), naming the node that
// has it; a second engine serving the same disk is refused at `node start`, naming the first
// engine's pid (the flock it holds while serving).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import { sparseFile } from '../helpers/tmp.js';
import { skipOrFail } from '../helpers/tools.js';
import type { NodeShow } from '../../src/engine/types.js';

test('one disk, one export: symlink and hard link refused naming the node; a second engine refused naming the pid', async (t) => {
  const a = await startEngine(t, { logLevel: 'info' });
  const disk = sparseFile(join(a.dir, 'disk.img'), 1 << 20);
  const sym = join(a.dir, 'sym.img');
  const hard = join(a.dir, 'hard.img');
  symlinkSync(disk, sym);
  linkSync(disk, hard);
  await a.dstJson(['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0']);
  for (const other of [sym, hard]) {
    const r = await a.dstFail(['node', 'add', 'vol2', '--disk', other, '--listen', '127.0.0.1:0'], 1);
    assert.equal(r.error!.code, 'DST_ERR_BUSY');
    assert.match(r.error!.message, new RegExp(`disk ${other}( \\(${disk}\\))? is the same file as the disk ${disk} of node vol: one disk, one export`));
  }
  assert.deepEqual((await a.dstJson<NodeShow[]>(['node', 'list'])).map((n) => n.name), ['vol'], 'nothing was added');

  // a disk that became the same file after `node add` is refused at `node start`
  const late = sparseFile(join(a.dir, 'late.img'), 1 << 20);
  await a.dstJson(['node', 'add', 'late', '--disk', late, '--listen', '127.0.0.1:0']);
  rmSync(late);
  symlinkSync(disk, late);
  const lateStart = await a.dstFail(['node', 'start', 'late'], 1);
  assert.match(lateStart.error!.message, new RegExp(`node start late: disk ${late} \\(${disk}\\) is the same file as the disk ${disk} of node vol`));
  await a.dstJson(['node', 'del', 'late']);

  const status = await a.status();
  if (!status.diskLock.startsWith('flock')) {
    skipOrFail(t, `disk lock unavailable: ${status.diskLock}`);
    return;
  }
  await a.dstJson(['security', 'add', 'vol', '--addr', '127.0.0.1', '--perm', 'rw']);
  await a.dstJson(['node', 'start', 'vol']);

  const b = await startEngine(t, { logLevel: 'info' });
  await b.dstJson(['node', 'add', 'other', '--disk', hard, '--listen', '127.0.0.1:0']);
  const refused = await b.dstFail(['node', 'start', 'other'], 1);
  assert.equal(refused.error!.code, 'DST_ERR_BUSY');
  assert.match(refused.error!.message, new RegExp(`disk ${hard} is already served by pid ${a.pid}, which holds its lock`));
  const shown = await b.show('other');
  assert.equal(shown.state, 'failed');

  await a.dstJson(['node', 'stop', 'vol']);
  const started = await b.dstJson<NodeShow>(['node', 'start', 'other']);
  assert.equal(started.state, 'listening', 'once the first engine stops serving, the disk is free');
});
