// Local permissions (DESIGN §2): runtime dir 0700, control socket 0600, NBD sockets 0600; with the
// runtime dir opened up to 0755 an unprivileged user still cannot use the control socket (or the NBD
// socket); with `--group G` the control socket is 0660 group G and a member of G can use it while
// a non-member cannot. Needs root (to run commands as `nobody` and `daemon`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import { startPair } from '../helpers/cluster.js';
import { dstBin, requireRoot, run, requireTool } from '../helpers/tools.js';

const mode = (p: string): number => statSync(p).mode & 0o777;
const oct = (m: number): string => m.toString(8).padStart(4, '0');

/** Run the dst CLI as another user: `runuser -u USER -- node bin/dst --socket S ARGS`. */
function dstAs(user: string, socket: string, args: string[]) {
  return run('runuser', ['-u', user, '--', process.execPath, dstBin(), '--socket', socket, ...args], {
    timeoutMs: 20_000, env: { DST_SOCKET: undefined, NO_COLOR: '1', HOME: '/' },
  });
}

/** Try to connect to a unix socket as another user; prints the errno or "connected". */
function connectAs(user: string, path: string) {
  const script = `const s=require('net').connect(process.argv[1]);s.on('connect',()=>{console.log('connected');s.destroy()});s.on('error',e=>{console.log(e.code);})`;
  return run('runuser', ['-u', user, '--', process.execPath, '-e', script, path], { timeoutMs: 15_000 });
}

test('default modes: runtime dir 0700, control socket 0600, NBD socket 0600', async (t) => {
  const pair = await startPair(t, { size: 4 * 1024 * 1024 });
  for (const e of [pair.exp, pair.rem]) {
    assert.equal(oct(mode(e.runDir)), oct(0o700), `runtime dir ${e.runDir}`);
    assert.equal(oct(mode(e.socket)), oct(0o600), `control socket ${e.socket}`);
    assert.ok(statSync(e.socket).isSocket());
  }
  assert.equal(oct(mode(pair.socket)), oct(0o600), `NBD socket ${pair.socket}`);
  assert.ok(statSync(pair.socket).isSocket());
  assert.equal(dirname(dirname(pair.socket)), pair.rem.runDir, 'NBD sockets live under <runtime dir>/nbd/');
  assert.equal(mode(dirname(pair.socket)) & 0o077, 0, `the nbd dir ${dirname(pair.socket)} is private (mode ${oct(mode(dirname(pair.socket)))})`);
});

test('runtime dir made 0755: nobody cannot use the control socket (exit 3, permission denied) nor the NBD socket', async (t) => {
  if (!requireRoot(t, 'running the CLI as user nobody needs root')) return;
  if (!requireTool(t, 'runuser', 'util-linux')) return;
  const pair = await startPair(t, { size: 4 * 1024 * 1024 });
  const e = pair.rem;
  // Open the path up to the socket: only the socket's own mode protects it now.
  chmodSync(e.dir, 0o755);
  chmodSync(e.runDir, 0o755);
  chmodSync(dirname(pair.socket), 0o755);
  // The root CLI still works (the check below is about permissions, not a dead engine).
  assert.equal((await e.dst(['status', '--json'])).code, 0);
  const r = await dstAs('nobody', e.socket, ['status', '--json']);
  assert.equal(r.code, 3, `nobody: expected exit 3 (no engine reachable), got ${r.code}\n${r.stderr}\n${r.stdout}`);
  assert.match(r.stderr, /permission denied|EACCES/i, `nobody: the error says permission denied: ${r.stderr}`);
  const text = await dstAs('nobody', e.socket, ['node', 'list']);
  assert.equal(text.code, 3);
  assert.match(text.stderr, /permission denied|EACCES/i);
  const nbd = await connectAs('nobody', pair.socket);
  assert.equal(nbd.stdout.trim(), 'EACCES', `nobody connecting to the NBD socket: ${nbd.stdout}${nbd.stderr}`);
  // The engine is unharmed.
  assert.equal((await pair.show()).state, 'ready');
});

test('--group nogroup: control socket 0660 group nogroup; a member (nobody) can use it, a non-member (daemon) cannot', async (t) => {
  if (!requireRoot(t, 'running the CLI as users nobody and daemon needs root')) return;
  if (!requireTool(t, 'runuser', 'util-linux')) return;
  const gid = Number((await run('getent', ['group', 'nogroup'])).stdout.split(':')[2]);
  assert.ok(Number.isInteger(gid), 'group nogroup exists');
  const idNobody = await run('id', ['-G', 'nobody']);
  assert.ok(idNobody.stdout.trim().split(/\s+/).map(Number).includes(gid), `nobody is a member of nogroup (${idNobody.stdout.trim()})`);
  const idDaemon = await run('id', ['-G', 'daemon']);
  assert.equal(idDaemon.code, 0, 'user daemon exists');
  assert.ok(!idDaemon.stdout.trim().split(/\s+/).map(Number).includes(gid), 'daemon is not a member of nogroup');

  const e = await startEngine(t, { args: ['--group', 'nogroup'] });
  // The socket answers as soon as it listens; the engine gives it to the group just after, then logs.
  await e.waitForLog(/listening on /, 10_000);
  chmodSync(e.dir, 0o755); // let other users reach the runtime dir; its own mode decides the rest
  const sock = statSync(e.socket);
  assert.equal(oct(sock.mode & 0o777), oct(0o660), 'control socket 0660 with --group');
  assert.equal(sock.gid, gid, 'control socket owned by the group');
  const rd = statSync(e.runDir);
  assert.equal(rd.gid, gid, 'runtime dir owned by the group');
  assert.equal(oct(rd.mode & 0o777), oct(0o750), 'runtime dir 0750 with --group');

  const member = await dstAs('nobody', e.socket, ['status', '--json']);
  assert.equal(member.code, 0, `nobody (member of nogroup) can use the engine: ${member.stderr}`);
  assert.equal((JSON.parse(member.stdout) as { pid: number }).pid, e.pid);
  const stranger = await dstAs('daemon', e.socket, ['status', '--json']);
  assert.equal(stranger.code, 3, `daemon (not a member) must not reach the engine: exit ${stranger.code}\n${stranger.stderr}`);
  assert.match(stranger.stderr, /permission denied|EACCES/i);
});
