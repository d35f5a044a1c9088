// The original utility's one-shot form: add + security file + start in one call; -D = stop then del;
// everything validated before the first request, a failure rolls the add back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import type { NodeShow } from '../../src/engine/types.js';

test('dst -n -d -a -p -s -R then -n -a -p -R, then -D', async (t) => {
  const exp = await startEngine(t);
  const rem = await startEngine(t);
  const disk = join(exp.dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(4 * 1024 * 1024));
  const sec = join(exp.dir, 'security.conf');
  writeFileSync(sec, '# perm address\n3 127.0.0.1\n1 10.0.0.0/8\n0 10.1.2.3\n');
  const up = await exp.dst(['-n', 'store', '-d', disk, '-a', '127.0.0.1', '-p', '0', '-s', sec, '-T', '2000', '-R']);
  assert.equal(up.code, 0, up.stderr);
  const show = await exp.dstJson<NodeShow>(['node', 'show', 'store']);
  assert.equal(show.state, 'listening');
  assert.equal(show.policy.resendTimeoutMs, 2000);
  assert.deepEqual(show.acl!.map((e) => [e.addr, e.perm]).sort(), [['10.0.0.0/8', 'r'], ['10.1.2.3', 'none'], ['127.0.0.1', 'rw']]);
  const port = show.listen!.split(':').pop()!;
  const down = await rem.dst(['-n', 'store', '-a', '127.0.0.1', '-p', port, '-R']);
  assert.equal(down.code, 0, down.stderr);
  await rem.waitForState('store', 'ready', 10_000);
  const gone = await rem.dst(['-n', 'store', '-D']);
  assert.equal(gone.code, 0, gone.stderr);
  assert.deepEqual(await rem.dstJson(['node', 'list']), []);
});

test('one-shot: a bad security file is refused before anything is added; a failing start rolls back', async (t) => {
  const exp = await startEngine(t);
  const disk = join(exp.dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(1024 * 1024));
  const sec = join(exp.dir, 'bad.conf');
  writeFileSync(sec, '3 127.0.0.1\n9 10.0.0.1\n');
  const res = await exp.dst(['-n', 'store', '-d', disk, '-a', '127.0.0.1', '-p', '0', '-s', sec, '-R']);
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /bad\.conf:2/);
  assert.deepEqual(await exp.dstJson(['node', 'list']), []);
  const res2 = await exp.dst(['-n', 'store', '-d', disk, '-a', '127.0.0.1', '-p', '0', '-c', 'aes-gcm', '-C', join(exp.dir, 'nokey'), '-R']);
  assert.notEqual(res2.code, 0);
  assert.match(res2.stderr, /nokey/);
  assert.deepEqual(await exp.dstJson(['node', 'list']), [], 'rolled back');
});
