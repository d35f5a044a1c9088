import { execFileSync } from 'node:child_process';
// Registry: node add/start/stop/del/set/show with fake runtimes. Every refused command changes nothing.
import { strict as assert } from 'node:assert';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DstError } from '../../src/util/errors.js';
import { createControlHandler } from '../../src/engine/control.js';
import type { NodeAddArgs } from '../../src/engine/types.js';
import {
  CRYPTO_KEYS, HEX_KEY, NODE_SHOW_KEYS, POLICY_KEYS, STATS_KEYS, freePort, makeRig, occupyPort, type TestRig,
} from './registry-fakes.js';

/** Run fn; it must throw a DstError with `code`; the rig's observable state must not change. */
async function refused(rig: TestRig, code: string, fn: () => unknown, msg?: RegExp): Promise<DstError> {
  const before = rig.snapshot();
  let caught: unknown = null;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof DstError, `expected a DstError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (msg) assert.match(caught.message, msg);
  assert.equal(rig.snapshot(), before, 'a refused command changed something');
  return caught;
}

const exportArgs = (rig: TestRig, over: Partial<NodeAddArgs> = {}): NodeAddArgs => ({
  name: 'vol', role: 'export', size: null, disk: join(rig.dir, 'disk.img'), listen: '127.0.0.1:0', readonly: false, ...over,
});

describe('registry: node add', () => {
  let rig: TestRig;
  beforeEach(() => { rig = makeRig(); rig.disk('disk.img', 1 << 20); });
  afterEach(() => rig.cleanup());

  it('adds an export: every NodeShow key present, null when not of this role', async () => {
    const s = await rig.registry.add(exportArgs(rig));
    assert.deepEqual(Object.keys(s).sort(), NODE_SHOW_KEYS);
    assert.deepEqual(Object.keys(s.policy).sort(), POLICY_KEYS);
    assert.deepEqual(Object.keys(s.stats).sort(), STATS_KEYS);
    assert.deepEqual(Object.keys(s.crypto).sort(), CRYPTO_KEYS);
    assert.equal(s.role, 'export');
    assert.equal(s.state, 'configured');
    assert.equal(s.reason, null);
    assert.equal(s.size, 1 << 20);
    assert.equal(s.autostart, false);
    assert.equal(s.disk, join(rig.dir, 'disk.img'));
    assert.equal(s.listen, '127.0.0.1:0');
    assert.equal(s.readonly, false);
    assert.deepEqual(s.acl, []);
    for (const k of ['remote', 'export', 'permissions', 'nbd', 'attachment', 'sessionId'] as const) assert.equal(s[k], null, k);
    assert.equal(s.policy.deadlineMs, 5000 * 13);
    assert.equal(s.policy.maxInflight, 64);
    assert.deepEqual(s.crypto, { cipher: 'none', hash: 'none', suite: 'none', threads: 4, cipherKeyFile: null, hashKeyFile: null });
    assert.deepEqual(rig.seen.map((e) => [e.node, e.event]), [['vol', 'node-added']]);
  });

  it('adds a remote: export fields null', async () => {
    const s = await rig.registry.add({ name: 'r1', role: 'remote', size: null, remote: 'storage.example:10825', export: 'vol', nbdListen: null });
    assert.deepEqual(Object.keys(s).sort(), NODE_SHOW_KEYS);
    for (const k of ['disk', 'listen', 'readonly', 'acl', 'nbd', 'permissions', 'sessionId', 'attachment'] as const) assert.equal(s[k], null, k);
    assert.equal(s.remote, 'storage.example:10825');
    assert.equal(s.export, 'vol');
    assert.equal(s.size, null);
  });

  it('refuses bad names and duplicates', async () => {
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { name: '-bad' })));
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { name: 'a.b' })));
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { name: 'x'.repeat(33) })));
    await rig.registry.add(exportArgs(rig));
    await refused(rig, 'DST_ERR_EXISTS', () => rig.registry.add(exportArgs(rig)), /node add vol: a node named vol already exists/);
  });

  it('refuses a missing disk, naming node, operation and errno', async () => {
    const err = await refused(rig, 'DST_ERR_NOT_FOUND', () => rig.registry.add(exportArgs(rig, { disk: '/nonexistent/x' })));
    assert.match(err.message, /^node add vol: disk \/nonexistent\/x: no such file \(ENOENT\)/);
    assert.equal(err.errno, 'ENOENT');
  });

  it('refuses relative disks, directories, size > disk, empty disks', async () => {
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { disk: 'disk.img' })), /absolute/);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { disk: rig.dir })), /not a regular file or block device/);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { size: (1 << 20) + 1 })), /larger than disk/);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { size: 0 })), /positive/);
    rig.disk('empty.img', 0);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { disk: join(rig.dir, 'empty.img') })), /empty/);
    const s = await rig.registry.add(exportArgs(rig, { size: 4096 }));
    assert.equal(s.size, 4096);
  });

  it('--create makes a sparse file of that size; an existing one is reused', async () => {
    const p = join(rig.dir, 'new.img');
    const s = await rig.registry.add(exportArgs(rig, { disk: p, create: 1 << 30 }));
    assert.equal(statSync(p).size, 1 << 30);
    assert.ok(statSync(p).blocks * 512 < 1 << 20, 'sparse');
    assert.equal(s.size, 1 << 30);
    await rig.registry.del('vol');
    writeFileSync(p, 'keep me');
    // existing but smaller than --create: refused, untouched
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { disk: p, create: 1 << 20 })), /less than --create/);
    assert.equal(readFileSync(p, 'utf8'), 'keep me');
    // existing and large enough: reused as it is
    const big = rig.disk('big.img', 8192);
    writeFileSync(big, 'data', { flag: 'r+' });
    await rig.registry.add(exportArgs(rig, { disk: big, create: 4096 }));
    assert.equal(readFileSync(big).subarray(0, 4).toString(), 'data');
    assert.equal(statSync(big).size, 8192);
  });

  it('a refused add with --create creates no file', async () => {
    const p = join(rig.dir, 'never.img');
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { disk: p, create: 4096, listen: 'nonsense' })));
    assert.equal(existsSync(p), false);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { disk: p, create: 4096, size: 8192 })));
    assert.equal(existsSync(p), false);
    await refused(rig, 'DST_ERR_NOT_FOUND', () => rig.registry.add(exportArgs(rig, { disk: join(rig.dir, 'nodir', 'x.img'), create: 4096 })), /no such directory/);
  });

  it('refuses bad listen syntax, busy ports, and ports of other nodes; port 0 is fine', async () => {
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { listen: '127.0.0.1' })));
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { listen: '127.0.0.1:99999' })));
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { listen: '192.0.2.55:0' })), /not a local address/);
    const busy = await occupyPort();
    try {
      const err = await refused(rig, 'DST_ERR_BUSY', () => rig.registry.add(exportArgs(rig, { listen: `127.0.0.1:${busy.port}` })), /port in use \(EADDRINUSE\)/);
      assert.equal(err.errno, 'EADDRINUSE');
    } finally {
      busy.server.close();
    }
    const port = await freePort();
    await rig.registry.add(exportArgs(rig, { listen: `127.0.0.1:${port}` }));
    await refused(rig, 'DST_ERR_BUSY', () => rig.registry.add(exportArgs(rig, { name: 'vol2', listen: `0.0.0.0:${port}` })), /used by node vol/);
    await rig.registry.add(exportArgs(rig, { name: 'a', listen: '127.0.0.1:0', disk: rig.disk('a.img', 1 << 20) }));
    await rig.registry.add(exportArgs(rig, { name: 'b', listen: '127.0.0.1:0', disk: rig.disk('b.img', 1 << 20) }));
  });

  it('refuses bad remote fields and export-only flags on a remote', async () => {
    const r = { name: 'r', role: 'remote' as const, size: null, export: null, nbdListen: null };
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add({ ...r }), /needs the export's address/);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add({ ...r, remote: 'host' }));
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add({ ...r, remote: 'host:0' }));
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add({ ...r, remote: 'host:1', export: 'bad.name' }));
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add({ ...r, remote: 'host:1', nbdListen: 'x' }));
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add({ ...r, remote: 'host:1', disk: '/x' }), /--disk is only for export/);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { remote: 'h:1' })), /--remote is only for remote/);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add({ ...r, role: 'bogus' as never, remote: 'h:1' }), /role/);
  });

  it('refuses a disk without write access unless readonly', async () => {
    const p = rig.disk('ro.img', 4096);
    // root writes through mode bits, but not through the immutable attribute
    const root = process.getuid?.() === 0;
    if (root) execFileSync('chattr', ['+i', p]);
    else chmodSync(p, 0o400);
    try {
      await refused(rig, 'DST_ERR_INVALID', () => rig.registry.add(exportArgs(rig, { disk: p })), /read\/write access/);
      await rig.registry.add(exportArgs(rig, { disk: p, readonly: true }));
    } finally {
      if (root) execFileSync('chattr', ['-i', p]);
    }
  });
});

describe('registry: lifecycle and states', () => {
  let rig: TestRig;
  beforeEach(async () => {
    rig = makeRig();
    rig.disk('disk.img', 1 << 20);
    await rig.registry.add(exportArgs(rig));
    await rig.registry.add({ name: 'r', role: 'remote', size: null, remote: '127.0.0.1:1', export: null, nbdListen: null });
  });
  afterEach(() => rig.cleanup());

  it('start is idempotent, stop drains, del requires configured; events in order', async () => {
    let s = await rig.registry.start('vol', 0);
    assert.equal(s.state, 'listening');
    assert.equal(s.autostart, true);
    assert.ok(rig.logs.some((l) => /empty ACL/.test(l)), 'warns about an empty ACL');
    await rig.registry.start('vol', 0);
    assert.equal(rig.runtimes.get('vol')!.starts, 2);
    await refused(rig, 'DST_ERR_STATE', () => rig.registry.del('vol'), /node del vol: the node is listening; stop it first/);
    s = await rig.registry.stop('vol', false);
    assert.equal(s.state, 'configured');
    assert.equal(s.autostart, false);
    assert.deepEqual(rig.runtimes.get('vol')!.stops, [false]);
    await rig.registry.del('vol');
    assert.equal(rig.registry.has('vol'), false);
    assert.deepEqual(rig.seen.filter((e) => e.node === 'vol').map((e) => e.event), ['node-added', 'node-started', 'node-stopped', 'node-removed']);
    const seqs = rig.seen.map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    await refused(rig, 'DST_ERR_NOT_FOUND', () => rig.registry.start('vol', 0), /node start vol: no node named "vol"/);
  });

  it('a remote start that is not ready in time says why; the node keeps trying', async () => {
    const rt = rig.runtimes.get('r')!;
    rt.afterStart = 'backoff';
    rt.afterStartReason = 'link';
    await assert.rejects(rig.registry.start('r', 250), (err: unknown) => {
      assert.ok(err instanceof DstError);
      assert.equal(err.code, 'DST_ERR_TIMEOUT');
      assert.equal(err.errno, 'ETIMEDOUT');
      assert.match(err.message, /^node start r: not ready after 250ms: state backoff \(reason link\); the node keeps trying/);
      return true;
    });
    assert.equal(rig.registry.show('r').state, 'backoff');
    assert.equal(rig.registry.show('r').autostart, true);
    rt.afterStart = 'failed';
    rt.afterStartReason = 'identity-changed';
    await assert.rejects(rig.registry.start('r', 250), /state failed \(reason identity-changed\)/);
  });

  it('a failing runtime start is reported with the operation', async () => {
    rig.runtimes.get('vol')!.failStart = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' });
    await assert.rejects(rig.registry.start('vol', 0), (err: unknown) => err instanceof DstError && err.code === 'DST_ERR_BUSY'
      && err.errno === 'EADDRINUSE' && err.message.startsWith('node start vol: '));
    assert.equal(rig.registry.show('vol').autostart, false);
  });

  it('node set checks ranges, applies at once, refuses all on one bad field', async () => {
    const rt = rig.runtimes.get('r')!;
    for (const bad of [{ maxInflight: 0 }, { maxInflight: 129 }, { maxRequest: 2048 }, { maxRequest: 64 << 20 },
      { resendTimeoutMs: 0 }, { pingIntervalMs: 0 }, { reconnectDelayMs: 0 }, { maxResends: 1001 }, { maxResends: -1 },
      { maxInflight: 8, maxRequest: 1.5 }]) {
      await refused(rig, 'DST_ERR_INVALID', () => rig.registry.set('r', bad), /^node set r: /);
    }
    assert.equal(rt.changes, 0);
    const s = await rig.registry.set('r', { maxInflight: 128, maxRequest: 32 << 20, resendTimeoutMs: 1000, maxResends: 0 });
    assert.equal(rt.changes, 1);
    assert.equal(s.policy.maxInflight, 128);
    assert.equal(s.policy.maxRequest, 32 << 20);
    assert.equal(s.policy.deadlineMs, 1000);
    assert.equal(rt.node.config.policy.resendTimeoutMs, 1000, 'the runtime sees the new config');
    assert.ok(Object.isFrozen(rt.node.config));
  });

  it('reconnect is for remote nodes only', async () => {
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.reconnect('vol'));
    rig.registry.reconnect('r');
    assert.equal(rig.runtimes.get('r')!.reconnects, 1);
  });

  it('the control handler enforces the family table states and roles', async () => {
    const handler = createControlHandler({
      registry: rig.registry, events: rig.events, log: rig.log, version: '9.9.9', socket: '/x', configFile: null, logLevel: () => 'info',
    });
    await rig.registry.start('vol', 0);
    await refused(rig, 'DST_ERR_STATE', () => handler('node-del', { name: 'vol' }, {}), /node del vol: not allowed while the node is listening \(allowed: configured\)/);
    await refused(rig, 'DST_ERR_INVALID', () => handler('node-reconnect', { name: 'vol' }, {}), /applies to remote nodes/);
    await refused(rig, 'DST_ERR_STATE', () => handler('node-reconnect', { name: 'r' }, {}), /while the node is configured/);
    await refused(rig, 'DST_ERR_INVALID', () => handler('security-add', { name: 'r', addr: '1.2.3.4', perm: 'rw', keyFile: null }, {}));
    await refused(rig, 'DST_ERR_NOT_FOUND', () => handler('node-show', { name: 'nope' }, {}));
    const st = await handler('status', {}, {}) as { nodes: unknown[]; version: string; cryptoThreads: number };
    assert.equal(st.version, '9.9.9');
    assert.equal(st.cryptoThreads, 4);
    assert.deepEqual(st.nodes, [{ name: 'vol', role: 'export', state: 'listening', attachment: null }, { name: 'r', role: 'remote', state: 'configured', attachment: null }]);
    const list = await handler('node-list', {}, {}) as unknown[];
    assert.equal(list.length, 2);
    await handler('node-stop', { name: 'vol', force: true }, {});
    assert.deepEqual(rig.runtimes.get('vol')!.stops, [true]);
    await handler('node-del', { name: 'vol' }, {});
    await assert.rejects(handler('hello', { version: '0.0.1' }, {}), /DST_ERR_VERSION|version 0.0.1/);
  });
});

describe('registry: security', () => {
  let rig: TestRig;
  beforeEach(async () => {
    rig = makeRig();
    rig.disk('disk.img', 1 << 20);
    await rig.registry.add(exportArgs(rig));
    await rig.registry.add({ name: 'r', role: 'remote', size: null, remote: '127.0.0.1:1', export: null, nbdListen: null });
  });
  afterEach(() => rig.cleanup());

  it('adds canonical entries, replaces the same address, applies at once', async () => {
    const rt = rig.runtimes.get('vol')!;
    let acl = await rig.registry.securityAdd('vol', '10.1.2.3/8', 'rw', null);
    assert.deepEqual(acl, [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }]);
    acl = await rig.registry.securityAdd('vol', '::ffff:192.0.2.7', '0', null);
    assert.deepEqual(acl[1], { addr: '192.0.2.7', perm: 'none', keyFile: null });
    acl = await rig.registry.securityAdd('vol', '10.0.0.0/8', 'r', null);
    assert.equal(acl.length, 2);
    assert.equal(acl[0]!.perm, 'r');
    acl = await rig.registry.securityAdd('vol', 'fd00:0:0::1/8', 'w', null);
    assert.equal(acl[2]!.addr, 'fd00::/8');
    assert.equal(rt.changes, 4);
    assert.deepEqual(rig.registry.show('vol').acl, acl);
    assert.deepEqual(rig.registry.securityList('vol'), acl);
  });

  it('refuses bad addresses, perms, key files, remote nodes; del of a missing address names it', async () => {
    await rig.registry.securityAdd('vol', '10.0.0.0/8', 'rw', null);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.securityAdd('vol', '10.0.0.300', 'rw', null));
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.securityAdd('vol', '10.0.0.0/33', 'rw', null));
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.securityAdd('vol', '10.0.0.1', 'x', null), /permission/);
    await refused(rig, 'DST_ERR_NOT_FOUND', () => rig.registry.securityAdd('vol', '10.0.0.1', 'r', '/nonexistent/key'), /key file \/nonexistent\/key: no such file/);
    const short = rig.keyFile('short', 'x'.repeat(31));
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.securityAdd('vol', '10.0.0.1', 'r', short), /31 bytes/);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.securityAdd('r', '10.0.0.1', 'r', null), /remote node/);
    await refused(rig, 'DST_ERR_NOT_FOUND', () => rig.registry.securityDel('vol', '10.9.9.9'), /security del vol: no ACL entry for 10.9.9.9/);
    const acl = await rig.registry.securityDel('vol', '10.200.0.0/8');
    assert.deepEqual(acl, []);
  });

  it('key-file entries are checked; group-readable ones warn', async () => {
    const k = rig.keyFile('k', HEX_KEY, 0o640);
    const acl = await rig.registry.securityAdd('vol', '192.0.2.7', 'r', k);
    assert.deepEqual(acl, [{ addr: '192.0.2.7', perm: 'r', keyFile: k }]);
    assert.ok(rig.logs.some((l) => l.includes('warn') && l.includes(k) && /readable by group or others/.test(l)));
    assert.ok(!rig.logs.some((l) => l.includes('a1a1a1a1')), 'key bytes never logged');
  });

  it('load is all-or-nothing and replaces same addresses', async () => {
    await rig.registry.securityAdd('vol', '10.0.0.0/8', 'r', null);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.securityLoad('vol', [
      { addr: '192.0.2.1', perm: 'rw', keyFile: null }, { addr: 'bogus', perm: 'rw', keyFile: null }]), /entry 2/);
    await refused(rig, 'DST_ERR_INVALID', () => rig.registry.securityLoad('vol', [
      { addr: '192.0.2.1', perm: 'rw', keyFile: null }, { addr: '192.0.2.1/32', perm: 'r', keyFile: null }]), /twice/);
    const acl = await rig.registry.securityLoad('vol', [
      { addr: '10.0.0.0/8', perm: 'rw', keyFile: null }, { addr: '192.0.2.1', perm: 'r', keyFile: null }]);
    assert.deepEqual(acl, [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }, { addr: '192.0.2.1', perm: 'r', keyFile: null }]);
  });
});
