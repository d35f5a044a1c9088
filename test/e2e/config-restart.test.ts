// config save → engine restart with that file → the same nodes, ACLs, crypto settings,
// policy and started state; no key bytes in the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startEngine } from '../helpers/engine.js';
import type { NodeShow } from '../../src/engine/types.js';

test('config save and restart restore everything, keys stay out of the file', async (t) => {
  const eng = await startEngine(t);
  const disk = join(eng.dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(4 * 1024 * 1024));
  const key = randomBytes(32).toString('hex');
  const keyFile = join(eng.dir, 'vol.key');
  writeFileSync(keyFile, key + '\n', { mode: 0o600 });
  await eng.dstJson(['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0', '--readonly']);
  await eng.dstJson(['security', 'add', 'vol', '--addr', '127.0.0.1', '--perm', 'rw']);
  await eng.dstJson(['security', 'add', 'vol', '--addr', '10.0.0.0/8', '--perm', 'r', '--key-file', keyFile]);
  await eng.dstJson(['crypto', 'set', 'vol', '--cipher', 'aes-gcm', '--cipher-key-file', keyFile, '--threads', '2']);
  await eng.dstJson(['node', 'set', 'vol', '--resend-timeout', '3s', '--max-resends', '5']);
  await eng.dstJson(['node', 'start', 'vol']);
  await eng.dstJson(['node', 'add', 'idle', '--remote', '127.0.0.1:1', '--export', 'x', '--nbd-listen', '127.0.0.1:0']);
  const before = await eng.dstJson<NodeShow[]>(['node', 'list']);

  const conf = join(eng.dir, 'dst.conf');
  const saved = await eng.dstJson<{ file: string }>(['config', 'save', conf]);
  assert.equal(saved.file, conf);
  const text = readFileSync(conf, 'utf8');
  assert.ok(!text.includes(key), 'no key bytes in the config file');
  assert.match(text, /\[node "vol"\]/);
  const shown = await eng.dst(['config', 'show']);
  assert.equal(shown.code, 0);
  assert.ok(!shown.stdout.includes(key));

  await eng.restart({ config: conf });
  const restarted = eng;
  await restarted.waitForState('vol', 'listening', 10_000);
  const after = await restarted.dstJson<NodeShow[]>(['node', 'list']);
  const pick = (n: NodeShow) => ({ name: n.name, role: n.role, disk: n.disk, readonly: n.readonly, acl: n.acl, crypto: n.crypto,
    policy: n.policy, autostart: n.autostart, remote: n.remote, export: n.export, size: n.size });
  assert.deepEqual(after.map(pick), before.map(pick));
  assert.equal(after.find((n) => n.name === 'vol')!.state, 'listening', 'a running node is started again');
  assert.equal(after.find((n) => n.name === 'idle')!.state, 'configured', 'a stopped node stays stopped');
});

test('config load is all-or-nothing and refuses names that exist; malformed files name file, section, key', async (t) => {
  const eng = await startEngine(t);
  const disk = join(eng.dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(1024 * 1024));
  await eng.dstJson(['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0']);
  const clash = join(eng.dir, 'clash.conf');
  writeFileSync(clash, `[node "fresh"]\nrole = remote\nremote = "127.0.0.1:9"\n\n[node "vol"]\nrole = remote\nremote = "127.0.0.1:9"\n`);
  const res = await eng.dst(['config', 'load', clash]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /vol/);
  assert.deepEqual((await eng.dstJson<NodeShow[]>(['node', 'list'])).map((n) => n.name), ['vol'], 'nothing loaded');
  const bad = join(eng.dir, 'bad.conf');
  writeFileSync(bad, `[node "x"]\nrole = remote\nremote = "127.0.0.1:9"\nmax-resends = lots\n`);
  const res2 = await eng.dst(['config', 'load', bad]);
  assert.equal(res2.code, 1);
  assert.match(res2.stderr, /bad\.conf/);
  assert.match(res2.stderr, /max-resends/);
  assert.match(res2.stderr, /node "x"|x/);
});
