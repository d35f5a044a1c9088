// Every node command against real engines, with --json checked against DESIGN §5.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import { assertNodeShow, STATUS_KEYS } from '../helpers/shapes.js';
import type { NodeShow, StatusShow, AclEntry } from '../../src/engine/types.js';

test('export and remote nodes: add, start, show, list, set, reconnect, stop, del', async (t) => {
  const exp = await startEngine(t);
  const rem = await startEngine(t);
  const disk = join(exp.dir, 'created.img');
  const added = await exp.dstJson<NodeShow>(['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0', '--create', '16M']);
  assertNodeShow(added as unknown as Record<string, unknown>);
  assert.equal(added.state, 'configured');
  assert.equal(statSync(disk).size, 16 * 1024 * 1024, '--create made the sparse file');
  assert.deepEqual(added.policy, { resendTimeoutMs: 5000, maxResends: 12, pingIntervalMs: 1000, reconnectDelayMs: 1000,
    maxInflight: 64, maxRequest: 1048576, deadlineMs: 65000, maxHandshakesPerAddr: 8, maxConnsPerAddr: 32, legTimeoutMs: 0, resyncRate: 0, resyncMinRate: 10485760, verifyIntervalMs: 0 });
  const acl = await exp.dstJson<AclEntry[]>(['security', 'add', 'vol', '--addr', '127.0.0.0/8', '--perm', 'rw']);
  assert.deepEqual(acl, [{ addr: '127.0.0.0/8', perm: 'rw', keyFile: null }]);
  assert.deepEqual(await exp.dstJson(['security', 'list', 'vol']), acl);
  const started = await exp.dstJson<NodeShow>(['node', 'start', 'vol']);
  assert.equal(started.state, 'listening');
  assert.match(started.listen!, /^127\.0\.0\.1:[1-9]\d*$/, 'real port reported');
  assert.equal((await exp.dstJson<NodeShow>(['node', 'start', 'vol'])).state, 'listening', 'start is idempotent');

  await rem.dstJson(['node', 'add', 'vol', '--remote', started.listen!]);
  const ready = await rem.dstJson<NodeShow>(['node', 'start', 'vol', '--wait', '10s']);
  assertNodeShow(ready as unknown as Record<string, unknown>);
  assert.equal(ready.state, 'ready');
  assert.equal(ready.size, 16 * 1024 * 1024);
  assert.equal(ready.permissions, 'rw');
  assert.match(ready.sessionId!, /^[0-9a-f]{32}$/);
  assert.ok(ready.nbd && existsSync(ready.nbd.socket));
  assert.equal(statSync(ready.nbd.socket).mode & 0o777, 0o600, 'NBD socket is 0600');
  assert.match(ready.nbd.uri, /^nbd\+unix:\/\/\/.*socket=/);

  const list = await rem.dstJson<NodeShow[]>(['node', 'list']);
  assert.equal(list.length, 1);
  assertNodeShow(list[0] as unknown as Record<string, unknown>);

  const set = await rem.dstJson<NodeShow>(['node', 'set', 'vol', '--resend-timeout', '2s', '--max-resends', '4', '--max-inflight', '16']);
  assert.equal(set.policy.resendTimeoutMs, 2000);
  assert.equal(set.policy.deadlineMs, 10000);
  assert.equal(set.policy.maxInflight, 16);

  const reconnected = await rem.dstJson<NodeShow>(['node', 'reconnect', 'vol']);
  assert.equal(reconnected.name, 'vol');
  await rem.waitForState('vol', 'ready', 10_000);
  assert.equal((await rem.dstJson<NodeShow>(['node', 'show', 'vol'])).sessionId, ready.sessionId, 'session id kept across reconnects');

  const status = await rem.dstJson<StatusShow>(['status']);
  assert.deepEqual(Object.keys(status).sort(), STATUS_KEYS);
  assert.deepEqual(status.nodes, [{ name: 'vol', role: 'remote', state: 'ready', attachment: null }]);

  const del = await rem.dst(['node', 'del', 'vol']);
  assert.equal(del.code, 1, 'del requires configured');
  assert.match(del.stderr, /configured/);
  assert.equal((await rem.dstJson<NodeShow>(['node', 'stop', 'vol'])).state, 'configured');
  assert.equal((await rem.dst(['node', 'del', 'vol'])).code, 0);
  assert.deepEqual(await rem.dstJson(['node', 'list']), []);
  assert.equal(existsSync(ready.nbd.socket), false, 'NBD socket removed on stop');

  const text = await exp.dst(['node', 'show', 'vol']);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /vol/);
  assert.match(text.stdout, /listening/);
  assert.doesNotMatch(text.stdout, /\x1b\[/, 'no colour when stdout is not a terminal');
});
