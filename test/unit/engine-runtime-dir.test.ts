// Runtime dir, state dir and control socket (DESIGN §2): modes, refusing unsafe dirs, stale
// socket removal, refusing when another engine answers; runEngine end to end with fake runtimes.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DstError } from '../../src/util/errors.js';
import { clearStaleSocket, prepareRuntimeDir, prepareStateDir, resolveGroup } from '../../src/engine/runtime-dir.js';
import { runEngine, type Engine } from '../../src/engine/engine.js';
import { controlRequest, clientVersion } from '../../src/netlink/client.js';
import { isRoot, requireRoot } from '../helpers/tools.js';
import type { NodeConfig } from '../../src/engine/types.js';
import { FakeRuntime } from './registry-fakes.js';

const root = isRoot();
const mode = (p: string): number => statSync(p).mode & 0o777;

function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  return assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof DstError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, re);
    return true;
  });
}

/** A socket file nobody answers on: a child listens, then is killed (the file stays). */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(statSync(path).isSocket());
}

describe('runtime dir', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'dst-rd-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is created 0700 (parents too), or 0750 owned by the group', async () => {
    const d = join(dir, 'a', 'run');
    await prepareRuntimeDir(d, null);
    assert.equal(mode(d), 0o700);
    await prepareRuntimeDir(d, null); // existing, fine
    const gid = root ? 4242 : process.getgid!();
    const g = join(dir, 'g');
    await prepareRuntimeDir(g, gid);
    assert.equal(mode(g), 0o750);
    assert.equal(statSync(g).gid, gid);
  });

  it('refuses a group- or world-writable dir, a file, a symlink', async () => {
    const d = join(dir, 'w');
    mkdirSync(d, { mode: 0o700 });
    chmodSync(d, 0o770);
    await rejectsWith(prepareRuntimeDir(d, null), 'DST_ERR_INVALID', /runtime dir .*\/w is group- or world-writable \(mode 770\)/);
    chmodSync(d, 0o1777);
    await rejectsWith(prepareRuntimeDir(d, null), 'DST_ERR_INVALID', /group- or world-writable/);
    assert.equal(statSync(d).mode & 0o7777, 0o1777, 'left as it was');
    writeFileSync(join(dir, 'f'), '');
    await rejectsWith(prepareRuntimeDir(join(dir, 'f'), null), 'DST_ERR_INVALID', /not a directory/);
    const real = join(dir, 'real');
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, join(dir, 'link'));
    await rejectsWith(prepareRuntimeDir(join(dir, 'link'), null), 'DST_ERR_INVALID', /symbolic link/);
  });

  it('refuses a dir owned by another user', async (t) => {
    if (!requireRoot(t, 'chown to another user needs root')) return;
    const d = join(dir, 'other');
    mkdirSync(d, { mode: 0o700 });
    chownSync(d, 65534, 65534);
    await rejectsWith(prepareRuntimeDir(d, null), 'DST_ERR_INVALID', /owned by uid 65534, not by this user/);
  });

  it('state dir is created 0700', async () => {
    const s = join(dir, 'state', 'dst');
    await prepareStateDir(s);
    assert.equal(mode(s), 0o700);
  });

  it('resolves groups by number and by name', async () => {
    assert.equal(await resolveGroup('123'), 123);
    assert.equal(await resolveGroup('root'), 0);
    await rejectsWith(resolveGroup('no-such-group-dst'), 'DST_ERR_NOT_FOUND', /no such group/);
    await rejectsWith(resolveGroup('bad group'), 'DST_ERR_INVALID', /not a group name/);
  });

  it('removes a stale socket, refuses a live one and non-sockets', async () => {
    const p = join(dir, 'dst.sock');
    assert.equal(await clearStaleSocket(p), 'absent');
    await staleSocket(p);
    assert.equal(await clearStaleSocket(p), 'removed');
    assert.equal(existsSync(p), false);
    const net = await import('node:net');
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(p, r));
    try {
      await rejectsWith(clearStaleSocket(p), 'DST_ERR_BUSY', /another engine is running on .*dst.sock/);
      assert.ok(existsSync(p));
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
    writeFileSync(p, 'not a socket');
    await rejectsWith(clearStaleSocket(p), 'DST_ERR_EXISTS', /not a socket/);
  });
});

describe('runEngine', () => {
  let dir: string;
  const engines: Engine[] = [];
  const fake = (node: { readonly config: NodeConfig }) => new FakeRuntime(node);
  const base = () => ({
    socket: join(dir, 'run', 'dst.sock'), stateDir: join(dir, 'state'), config: null as string | null, group: null as string | null,
    logLevel: 'error' as const, createExport: fake, createRemote: fake, logSink: () => {},
  });
  const start = async (o: Partial<ReturnType<typeof base>> & Record<string, unknown> = {}): Promise<Engine> => {
    const e = await runEngine({ ...base(), ...o });
    engines.push(e);
    return e;
  };
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'dst-en-')); });
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.shutdown({ force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates dirs and a 0600 socket, answers over the socket, shuts down cleanly', async () => {
    const e = await start();
    assert.equal(mode(join(dir, 'run')), 0o700);
    assert.equal(mode(join(dir, 'state')), 0o700);
    assert.equal(mode(e.socket), 0o600);
    const st = await controlRequest(e.socket, 'status', {});
    assert.equal(st.socket, e.socket);
    assert.equal(st.version, clientVersion());
    assert.equal(st.pid, process.pid);
    await e.shutdown();
    await e.closed;
    assert.equal(existsSync(e.socket), false, 'socket removed');
  });

  it('uses 0660 and the group with --group', async () => {
    const gid = root ? 4243 : process.getgid!();
    const e = await start({ group: String(gid) });
    assert.equal(mode(e.socket), 0o660);
    assert.equal(statSync(e.socket).gid, gid);
    assert.equal(mode(join(dir, 'run')), 0o750);
  });

  it('refuses when another engine answers; replaces a stale socket', async () => {
    const e = await start();
    await rejectsWith(runEngine(base()), 'DST_ERR_BUSY', /another engine is running on/);
    assert.ok(existsSync(e.socket), 'the live engine keeps its socket');
    await e.shutdown();
    await staleSocket(e.socket);
    const e2 = await start();
    await controlRequest(e2.socket, 'status', {});
  });

  it('refuses a socket path over 107 bytes and a missing --config file; a missing default is empty', async () => {
    await rejectsWith(runEngine({ ...base(), socket: join(dir, 'x'.repeat(120), 'dst.sock') }), 'DST_ERR_INVALID', /107/);
    await rejectsWith(runEngine({ ...base(), config: join(dir, 'missing.conf') }), 'DST_ERR_NOT_FOUND', /missing.conf: no such file/);
    const e = await start({ config: join(dir, 'missing.conf'), configRequired: false });
    assert.deepEqual(e.registry.names(), []);
  });

  it('loads the config (all-or-nothing), starts autostart nodes, saves it back', async () => {
    const disk = join(dir, 'd.img');
    writeFileSync(disk, Buffer.alloc(8192));
    const conf = join(dir, 'dst.conf');
    writeFileSync(conf, `[engine]\nlog-level = warn\n[node "a"]\nrole = export\ndisk = "${disk}"\nlisten = "127.0.0.1:0"\nautostart = true\n` +
      `[node "b"]\nrole = remote\nremote = "127.0.0.1:1"\n`);
    const e = await start({ config: conf, logLevel: undefined });
    assert.equal(e.log.level, 'warn', 'the config log-level applies when none is given');
    assert.equal(e.registry.show('a').state, 'listening');
    assert.equal(e.registry.show('b').state, 'configured');
    const saved = await controlRequest(e.socket, 'config-save', { file: null });
    assert.equal(saved.file, conf);
    const shown = await controlRequest(e.socket, 'config-show', {});
    assert.match(shown.text, /\[node "a"\]\nrole = "export"\ndisk = ".*d.img"/);
    await assert.rejects(controlRequest(e.socket, 'config-load', { file: conf }), /already exists/);
    await e.shutdown();

    writeFileSync(conf, `[node "a"]\nrole = export\ndisk = "${disk}"\nlisten = "127.0.0.1:0"\n[node "b"]\nrole = export\ndisk = "/nonexistent"\nlisten = "127.0.0.1:0"\n`);
    await rejectsWith(runEngine({ ...base(), config: conf }), 'DST_ERR_NOT_FOUND', /node b: disk \/nonexistent/);
    writeFileSync(conf, '[node "a"]\nrole = export\nbogus = 1\n');
    await rejectsWith(runEngine({ ...base(), config: conf }), 'DST_ERR_CONFIG', /\[node "a"\] bogus: unknown key/);
  });

  it('config save with --no-config needs a file; events reach subscribers over the socket', async () => {
    const e = await start();
    await assert.rejects(controlRequest(e.socket, 'config-save', { file: null }), /--no-config/);
    const { connectControl } = await import('../../src/netlink/client.js');
    const client = await connectControl(e.socket);
    const got: string[] = [];
    await client.subscribe(null, (ev) => { if (ev.event !== 'subscribed') got.push(`${ev.node}:${ev.event}`); });
    const disk = join(dir, 'd.img');
    writeFileSync(disk, Buffer.alloc(4096));
    await controlRequest(e.socket, 'node-add', { name: 'v', role: 'export', size: null, disk, listen: '127.0.0.1:0' });
    await controlRequest(e.socket, 'node-start', { name: 'v', waitMs: 0 });
    for (let i = 0; i < 50 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(got, ['v:node-added', 'v:node-started']);
    client.close();
    await e.shutdown();
    assert.deepEqual((e.registry.runtime('v') as FakeRuntime).stops, [false], 'shutdown drains (not forced)');
  });
});
