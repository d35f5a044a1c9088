// Config file (DESIGN §12): parse good files, bad files → errors naming file/section/key,
// save → parse round trip (strings quoted, no key bytes), load all-or-nothing and refusing names.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DstError } from '../../src/util/errors.js';
import { formatConfig, parseConfigText, readConfigFile } from '../../src/engine/config.js';
import { writeFileAtomic as writeConfigFile } from '../../src/engine/atomic-file.js';
import { DEFAULT_POLICY, type ExportConfig, type NodeConfig, type RemoteConfig } from '../../src/engine/types.js';
import { HEX_KEY, makeRig, type TestRig } from './registry-fakes.js';

const F = '/etc/dst/dst.conf';

const EXAMPLE = `[engine]
log-level = info
[node "vol"]
role = export            ; or remote
disk = "/srv/vol.img"
listen = "0.0.0.0:10825"
autostart = true         ; saved as the node was running
allow[] = "10.0.0.0/8 rw"
allow[] = "192.0.2.7 r key-file=/etc/dst/keys/client7"
cipher = aes-gcm
cipher-key-file = "/etc/dst/keys/vol"
resend-timeout = 5s
`;

function bad(text: string, re: RegExp): void {
  assert.throws(() => parseConfigText(text, F), (err: unknown) => {
    assert.ok(err instanceof DstError, String(err));
    assert.equal(err.code, 'DST_ERR_CONFIG', err.message);
    assert.ok(err.message.startsWith(`config ${F}: `), err.message);
    assert.match(err.message, re);
    return true;
  });
}

describe('config: parse', () => {
  it('parses the DESIGN example', () => {
    const c = parseConfigText(EXAMPLE, F);
    assert.equal(c.engine.logLevel, 'info');
    assert.equal(c.nodes.length, 1);
    const n = c.nodes[0] as ExportConfig;
    assert.deepEqual(n, {
      name: 'vol', role: 'export', size: null, autostart: true, policy: { ...DEFAULT_POLICY },
      crypto: { cipher: 'aes-gcm', hash: 'none', cipherKeyFile: '/etc/dst/keys/vol', hashKeyFile: null, threads: null },
      disk: '/srv/vol.img', listen: '0.0.0.0:10825', readonly: false,
      acl: [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }, { addr: '192.0.2.7', perm: 'r', keyFile: '/etc/dst/keys/client7' }],
    });
  });

  it('takes quotes off values followed by a comment', () => {
    const c = parseConfigText('[node "v"]\nrole = "export" ; the role\ndisk = "/srv/a b.img" # main disk\nlisten = \'127.0.0.1:1\' ; x\n' +
      'allow[] = "10.0.0.0/8 rw" ; lab\n', F);
    const n = c.nodes[0] as ExportConfig;
    assert.equal(n.disk, '/srv/a b.img');
    assert.equal(n.listen, '127.0.0.1:1');
    assert.deepEqual(n.acl, [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }]);
  });

  it('parses remote nodes, policy values and kernel crypto names', () => {
    const c = parseConfigText(`[node "r1"]
role = remote
remote = "storage.example:10825"
export = "vol"
nbd-listen = "127.0.0.1:10809"
size = 1G
cipher = "cbc(aes)"
hash = "hmac(sha512)"
cipher-key-file = "/k/c"
hash-key-file = "/k/h"
threads = 2
resend-timeout = 2s
max-resends = 3
ping-interval = 500ms
reconnect-delay = 1m
max-inflight = 128
max-request = 4M
max-handshakes-per-addr = 4
max-conns-per-addr = 16
leg-timeout = 3s
resync-rate = 50M
resync-min-rate = 20M
verify-interval = 60m

[node "r2"]
role = "remote"
remote = "[::1]:1"
`, F);
    const r = c.nodes[0] as RemoteConfig;
    assert.equal(c.engine.logLevel, null);
    assert.deepEqual(r.legs, [{ remote: 'storage.example:10825', export: 'vol' }]);
    assert.equal(r.layout, 'single');
    assert.equal(r.nbdListen, '127.0.0.1:10809');
    assert.equal(r.size, 1 << 30);
    assert.deepEqual(r.crypto, { cipher: 'aes-cbc', hash: 'sha512', cipherKeyFile: '/k/c', hashKeyFile: '/k/h', threads: 2 });
    assert.deepEqual(r.policy, { resendTimeoutMs: 2000, maxResends: 3, pingIntervalMs: 500, reconnectDelayMs: 60_000, maxInflight: 128, maxRequest: 4 << 20,
      maxHandshakesPerAddr: 4, maxConnsPerAddr: 16, legTimeoutMs: 3000, resyncRate: 50 << 20, resyncMinRate: 20 << 20, verifyIntervalMs: 3_600_000 });
    assert.equal(c.nodes[1]!.name, 'r2');
    assert.equal((c.nodes[1] as RemoteConfig).legs[0]!.export, null);
  });

  it('refuses bad files, naming file, section and key', () => {
    bad('[node "vol"]\nrole = export\ndisk = /x\nlisten = "1.2.3.4:1"\nresend-timeout = 5x\n', /\[node "vol"\] resend-timeout: invalid resend-timeout "5x"/);
    bad('[node "vol"]\nrole = export\ndisk = /x\nlisten = "1.2.3.4:1"\ncolour = blue\n', /\[node "vol"\] colour: unknown key/);
    bad('[node "vol"]\ndisk = /x\n', /\[node "vol"\] role: missing/);
    bad('[node "vol"]\nrole = disk\n', /\[node "vol"\] role: must be export or remote/);
    bad('[node "vol"]\nrole = export\nlisten = "1.2.3.4:1"\n', /\[node "vol"\] disk: missing/);
    bad('[node "vol"]\nrole = export\ndisk = x.img\nlisten = "1.2.3.4:1"\n', /\[node "vol"\] disk: "x.img" must be an absolute path/);
    bad('[node "vol"]\nrole = export\ndisk = /x\nlisten = nope\n', /\[node "vol"\] listen: invalid listen address/);
    bad('[node "vol"]\nrole = export\ndisk = /x\nlisten = "1.2.3.4:1"\nremote = "h:1"\n', /\[node "vol"\] remote: only for remote nodes/);
    bad('[node "r"]\nrole = remote\nremote = "h:1"\ndisk = /x\n', /\[node "r"\] disk: only for export nodes/);
    bad('[node "r"]\nrole = remote\nremote = "h:0"\n', /\[node "r"\] remote: .*port must be 1-65535/);
    bad('[node "r"]\nrole = remote\nremote = "h:1"\nmax-inflight = 500\n', /\[node "r"\] max-inflight: max-inflight 500 out of range 1-128/);
    bad('[node "r"]\nrole = remote\nremote = "h:1"\nmax-request = 64M\n', /\[node "r"\] max-request: .*out of range/);
    bad('[node "r"]\nrole = remote\nremote = "h:1"\nmax-resends = many\n', /\[node "r"\] max-resends: expected a whole number/);
    bad('[node "r"]\nrole = remote\nremote = "h:1"\nautostart = maybe\n', /\[node "r"\] autostart: expected true or false/);
    bad('[node "r"]\nrole = remote\nremote = "h:1"\ncipher = aes-cbc\ncipher-key-file = /k\n', /\[node "r"\] cipher\/hash: .*keyed hash/);
    bad('[node "r"]\nrole = remote\nremote = "h:1"\ncipher = rot13\n', /\[node "r"\] cipher: unknown cipher/);
    bad('[node "r"]\nrole = remote\nremote = "h:1"\nthreads = 99\n', /\[node "r"\] threads: threads 99 out of range/);
    bad('[node "vol"]\nrole = export\ndisk = /x\nlisten = "1.2.3.4:1"\nallow[] = "10.0.0.0/8 rwx"\n', /\[node "vol"\] allow: invalid permission "rwx"/);
    bad('[node "vol"]\nrole = export\ndisk = /x\nlisten = "1.2.3.4:1"\nallow[] = "10.0.0.0/8"\n', /\[node "vol"\] allow: invalid ACL entry/);
    bad('[node "vol"]\nrole = export\ndisk = /x\nlisten = "1.2.3.4:1"\nallow[] = "10.0.0.1/8 r"\nallow[] = "10.0.0.0/8 rw"\n', /allow: 10.0.0.0\/8 appears twice/);
    bad('[engine]\nlog-level = loud\n', /\[engine\] log-level: must be one of/);
    bad('[engine]\nverbose = true\n', /\[engine\] verbose: unknown key/);
    bad('[nodes "x"]\nrole = export\n', /\[nodes "x"\]: unknown section/);
    bad('[node "a.b"]\nrole = export\n', /\[node "a.b"\]: section names may not contain dots/);
    bad('[node "-x"]\nrole = export\n', /\[node "-x"\]: invalid node name/);
    bad('[node "v"]\nrole = remote\n[node "v"]\nremote = "h:1"\n', /\[node "v"\]: section appears twice/);
    bad('[node "v"]\nrole = remote\nrole = export\n', /\[node "v"\] role: key appears twice/);
    bad('role = remote\n', /role: key outside any section/);
    bad('[node "v"] ; comment\nrole = remote\n', /line 1: malformed section header/);
    bad('[node "v"]\nrole = remote\nremote = "h:1"\nreadonly\n', /\[node "v"\] readonly: no value/);
  });

  it('reads files: a missing default is empty, a missing --config is an error', async () => {
    const missing = '/nonexistent/dst.conf';
    assert.deepEqual((await readConfigFile(missing, { required: false })).nodes, []);
    await assert.rejects(readConfigFile(missing, { required: true }), (err: unknown) =>
      err instanceof DstError && err.code === 'DST_ERR_NOT_FOUND' && err.errno === 'ENOENT' && err.message.includes(missing));
  });
});

describe('config: save and load', () => {
  let rig: TestRig;
  beforeEach(() => { rig = makeRig(); });
  afterEach(() => rig.cleanup());

  it('save → parse round trip; every string value quoted; no key bytes', async () => {
    const disk = rig.disk('my disk; #1.img', 1 << 20);
    const ck = rig.keyFile('c.key', HEX_KEY);
    const hk = rig.keyFile('h key', HEX_KEY);
    await rig.registry.add({ name: 'vol', role: 'export', size: 4096, disk, listen: '127.0.0.1:0', readonly: true });
    await rig.registry.securityAdd('vol', '10.0.0.0/8', 'rw', null);
    await rig.registry.securityAdd('vol', '2001:db8::/32', 'none', null);
    await rig.registry.securityAdd('vol', '192.0.2.7', 'r', hk);
    await rig.registry.cryptoSet({ name: 'vol', cipher: 'aes-ctr', hash: 'blake2b512', cipherKeyFile: ck, hashKeyFile: hk, threads: 2 });
    await rig.registry.add({ name: 'r', role: 'remote', size: null, remote: '[::1]:10825', export: 'vol', nbdListen: '127.0.0.1:10809' });
    await rig.registry.set('r', { resendTimeoutMs: 1500, maxResends: 0, maxRequest: 4 << 20, pingIntervalMs: 250 });
    await rig.registry.start('vol', 0);

    const text = formatConfig({ logLevel: 'debug', nodes: rig.registry.snapshot() });
    assert.ok(!text.includes('a1a1a1'), 'no key bytes');
    for (const line of text.split('\n')) {
      const m = /^([a-z-]+(?:\[\])?) = (.*)$/.exec(line);
      if (!m) continue;
      if (['readonly', 'autostart', 'threads', 'max-resends', 'max-inflight'].includes(m[1]!)) assert.match(m[2]!, /^(true|false|\d+)$/, line);
      else assert.match(m[2]!, /^".*"$/, `string values are quoted: ${line}`);
    }
    const parsed = parseConfigText(text, F);
    assert.equal(parsed.engine.logLevel, 'debug');
    assert.deepEqual(parsed.nodes, rig.registry.snapshot());
    const vol = parsed.nodes[0] as ExportConfig;
    assert.equal(vol.autostart, true, 'saved as running');
    assert.equal(parsed.nodes[1]!.autostart, false);
    assert.equal(vol.disk, disk);
  });

  it('writes atomically (tmp + rename) and keeps the mode', async () => {
    const file = join(rig.dir, 'conf', 'dst.conf');
    await writeConfigFile(file, '[engine]\n');
    assert.equal(readFileSync(file, 'utf8'), '[engine]\n');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    (await import('node:fs')).chmodSync(file, 0o640);
    await writeConfigFile(file, '[engine]\nlog-level = "warn"\n');
    assert.equal(statSync(file).mode & 0o777, 0o640);
    assert.deepEqual(readdirSync(join(rig.dir, 'conf')), ['dst.conf']);
  });

  it('load is all-or-nothing and refuses names that already exist', async () => {
    const d1 = rig.disk('d1.img', 1 << 20);
    await rig.registry.add({ name: 'vol', role: 'export', size: null, disk: d1, listen: '127.0.0.1:0' });
    // one disk per export (one disk, one export)
    const text = (names: string[], disk?: string): string => names.map((n) =>
      `[node "${n}"]\nrole = export\ndisk = "${disk ?? rig.disk(`${n}.img`, 1 << 20)}"\nlisten = "127.0.0.1:0"\nautostart = true\n`).join('\n');

    const before = rig.snapshot();
    await assert.rejects(rig.registry.load(parseConfigText(text(['a', 'vol']), F).nodes, `config load ${F}`, { start: true }),
      (err: unknown) => err instanceof DstError && err.code === 'DST_ERR_EXISTS' && /a node named vol already exists/.test(err.message));
    assert.equal(rig.snapshot(), before);
    const two = parseConfigText(text(['a']) + '\n' + text(['b'], '/nonexistent/disk.img'), F).nodes;
    await assert.rejects(rig.registry.load(two, `config load ${F}`, { start: true }),
      (err: unknown) => err instanceof DstError && err.code === 'DST_ERR_NOT_FOUND' && /config load \/etc\/dst\/dst.conf: node b: disk/.test(err.message));
    assert.equal(rig.snapshot(), before);
    assert.equal(rig.registry.has('a'), false);

    const names = await rig.registry.load(parseConfigText(text(['a', 'b']), F).nodes, `config load ${F}`, { start: true });
    assert.deepEqual(names, ['a', 'b']);
    assert.equal(rig.registry.show('a').state, 'listening', 'autostart nodes are started');
    assert.equal(rig.registry.show('vol').state, 'configured');
  });

  it('load checks key files and listen clashes inside the file', async () => {
    const d1 = rig.disk('d1.img', 1 << 20);
    const c = (n: string, extra: string): string => `[node "${n}"]\nrole = export\ndisk = "${d1}"\nlisten = "127.0.0.1:45999"\n${extra}\n`;
    await assert.rejects(rig.registry.load(parseConfigText(c('a', '') + c('b', ''), F).nodes, 'config load x', { start: false }),
      /node [ab]: listen 127.0.0.1:45999: port already used by node [ab]/);
    writeFileSync(join(rig.dir, 'short.key'), 'short');
    await assert.rejects(rig.registry.load(parseConfigText(c('a', `cipher = aes-gcm\ncipher-key-file = "${join(rig.dir, 'short.key')}"`), F).nodes, 'config load x', { start: false }),
      /config load x: node a: key file .*short.key: key is 5 bytes/);
    assert.deepEqual(rig.registry.names(), []);
  });

  it('config types are what the registry stores', () => {
    const n: NodeConfig = parseConfigText(EXAMPLE, F).nodes[0]!;
    assert.equal(n.role, 'export');
  });
});
