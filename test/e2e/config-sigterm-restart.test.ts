// Engine shutdown (SIGTERM) never changes what the operator asked: nodes that were running start
// again after a restart, a stopped one stays stopped, and an export added with port 0 comes back
// on the port it bound — with no `dst config save` anywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import type { NodeShow } from '../../src/engine/types.js';

test('SIGTERM and restart: running nodes start again, port-0 export on the same port', async (t) => {
  const eng = await startEngine(t, { ownConfig: true });
  const disk = join(eng.dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(1024 * 1024));
  await eng.dstJson(['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0']);
  await eng.dstJson(['security', 'add', 'vol', '--addr', '127.0.0.1', '--perm', 'rw']);
  const started = await eng.dstJson<NodeShow>(['node', 'start', 'vol']);
  await eng.dstJson(['node', 'add', 'idle', '--disk', disk, '--listen', '127.0.0.1:0', '--readonly']);
  await eng.dstJson(['node', 'add', 'rem', '--remote', '127.0.0.1:9']);
  await eng.dstJson(['node', 'start', 'rem', '--wait', '0']).catch(() => {}); // keeps trying: counts as started

  await eng.kill('SIGTERM');
  const text = readFileSync(eng.configFile, 'utf8');
  assert.match(text, new RegExp(`listen = "${started.listen}"`), 'saved with the port it bound');
  assert.match(text, /\[node "vol"\][^[]*autostart = true/, 'the shutdown left vol wanted');
  assert.match(text, /\[node "idle"\][^[]*autostart = false/);

  await eng.restart();
  const vol = await eng.waitForState('vol', 'listening', 10_000);
  assert.equal(vol.listen, started.listen, 'same port after the restart');
  assert.equal(vol.autostart, true);
  assert.deepEqual(vol.acl, started.acl);
  assert.equal((await eng.show('idle')).state, 'configured', 'a node never started stays stopped');
  assert.notEqual((await eng.show('rem')).state, 'configured', 'a remote that kept trying is started again');
});
