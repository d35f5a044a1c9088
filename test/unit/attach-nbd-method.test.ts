// The nbd attach method without nbd.ko: its exact command lines, device choice, failure handling
// and supervision, against a fake System (spawner + /sys + /proc), and the attachment manager's
// states, events, record and refusals on top of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { DstError } from '../../src/util/errors.js';
import {
  NBD_KERNEL_TIMEOUT_S, losetupAttachArgs, nbdClientCheckArgs, nbdClientConnectArgs, nbdClientDisconnectArgs, nbdfuseArgs,
  nbdUnixUriFor,
} from '../../src/engine/attach/argv.js';
import { createNbdMethod, pickNbdDevice } from '../../src/engine/attach/nbd-method.js';
import type { MethodDeps } from '../../src/engine/attach/method.js';
import { AttachManager, type AttachNodeInfo } from '../../src/engine/attach/manager.js';
import type { Helper, System, ToolResult } from '../../src/engine/attach/system.js';
import type { EventFields, EventName } from '../../src/engine/types.js';
import { tmpDir } from '../helpers/tmp.js';

const SOCK = '/run/dst/nbd/vol.sock';

/** A machine with nbd.ko loaded: /dev/nbd0..3, nbd0 already connected by someone else. */
class FakeNbdSystem implements System {
  files = new Map<string, string>();
  devs = new Set(['/dev/nbd0', '/dev/nbd1', '/dev/nbd2', '/dev/nbd3']);
  tools = new Set(['nbd-client']);
  root = true;
  calls: { cmd: string; args: string[]; timeoutMs: number | undefined }[] = [];
  /** what the next nbd-client connect does: 'ok', or a failing result */
  connectResult: ToolResult | 'ok' = 'ok';
  spawned: string[][] = [];

  constructor() {
    for (let i = 0; i < 4; i++) {
      this.files.set(`/sys/block/nbd${i}/size`, '0\n');
      this.files.set(`/sys/class/block/nbd${i}/dev`, `43:${i * 32}\n`);
    }
    this.connect('/dev/nbd0');
    this.files.set('/proc/self/mountinfo', '22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n');
    this.files.set('/proc/swaps', 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n');
  }

  connect(dev: string): void {
    const n = dev.replace('/dev/', '');
    this.files.set(`/sys/block/${n}/pid`, '4242\n');
    this.files.set(`/sys/block/${n}/size`, '131072\n');
  }

  disconnect(dev: string): void {
    const n = dev.replace('/dev/', '');
    this.files.delete(`/sys/block/${n}/pid`);
    this.files.set(`/sys/block/${n}/size`, '0\n');
  }

  async run(cmd: string, args: readonly string[], opts?: { timeoutMs?: number }): Promise<ToolResult> {
    this.calls.push({ cmd, args: [...args], timeoutMs: opts?.timeoutMs });
    const ok: ToolResult = { code: 0, signal: null, stdout: '', stderr: '', timedOut: false };
    if (cmd !== 'nbd-client') return { ...ok, code: 127, stderr: `${cmd}: not faked` };
    const dev = args[args.length - 1]!;
    if (args[0] === '-d') {
      this.disconnect(args[1]!);
      return ok;
    }
    if (args[0] === '-c') return this.files.has(`/sys/block/${dev.replace('/dev/', '')}/pid`) ? { ...ok, stdout: '4242\n' } : { ...ok, code: 1 };
    if (this.connectResult !== 'ok') return this.connectResult;
    this.connect(dev);
    return { ...ok, stdout: `Negotiation: ..size = 64MB\nConnected ${dev}\n` };
  }

  spawn(cmd: string, args: readonly string[]): Helper {
    this.spawned.push([cmd, ...args]);
    throw new Error('the nbd method spawns no long-running helper');
  }

  which(tool: string): string | null {
    return this.tools.has(tool) ? `/usr/sbin/${tool}` : null;
  }

  async exists(path: string): Promise<boolean> {
    return this.devs.has(path) || this.files.has(path);
  }

  async readFile(path: string): Promise<string | null> {
    return this.files.get(path) ?? null;
  }

  async readdir(path: string): Promise<string[]> {
    if (path === '/sys/block') return ['loop0', 'nbd0', 'nbd1', 'nbd10', 'nbd2', 'nbd3', 'sda'];
    return [];
  }

  async mkdir(): Promise<void> {}
  async unlink(): Promise<void> {}
  async rmdir(): Promise<void> {}
  kill(): boolean { return false; }
  async sleep(): Promise<void> { await new Promise((r) => setImmediate(r)); }
  isRoot(): boolean { return this.root; }
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

function deps(sys: System, clock = new FakeClock()): MethodDeps {
  return { sys, clock, log: silentLogger, pollMs: 1000, stepTimeoutMs: 30_000, settleTimeoutMs: 200 };
}

const noProgress = async (): Promise<void> => {};

function request(extra: Partial<Parameters<ReturnType<typeof createNbdMethod>['attach']>[0]> = {}) {
  return { name: 'vol', socket: SOCK, exportName: 'vol', readonly: false, mountDir: '/run/dst/attach/vol', pidFile: '/run/dst/attach/vol.pid', progress: noProgress, ...extra };
}

test('nbd-client command lines: netlink mode (no -nonetlink), unix socket, 4 KiB blocks, a huge kernel timeout', () => {
  assert.deepEqual(nbdClientConnectArgs({ socket: SOCK, exportName: 'vol', device: '/dev/nbd1', readonly: false }),
    ['-unix', SOCK, '-N', 'vol', '-b', '4096', '-t', '1000000', '/dev/nbd1']);
  assert.deepEqual(nbdClientConnectArgs({ socket: SOCK, exportName: 'vol', device: '/dev/nbd1', readonly: true }),
    ['-unix', SOCK, '-N', 'vol', '-b', '4096', '-t', '1000000', '-readonly', '/dev/nbd1']);
  for (const bad of ['-nonetlink', '-L', '-persist', '-p', '-swap', '-s']) {
    assert.ok(!nbdClientConnectArgs({ socket: SOCK, exportName: 'vol', device: '/dev/nbd1', readonly: false }).includes(bad), bad);
  }
  // the kernel's timeout (seconds × HZ in an unsigned int) must not overflow even at HZ = 4000 ...
  assert.ok(NBD_KERNEL_TIMEOUT_S * 4000 < 2 ** 32);
  // ... and must outlast any engine deadline a sane policy gives (resend-timeout x (max-resends + 1))
  assert.ok(NBD_KERNEL_TIMEOUT_S > 7 * 24 * 3600);
  assert.deepEqual(nbdClientDisconnectArgs('/dev/nbd1'), ['-d', '/dev/nbd1']);
  assert.deepEqual(nbdClientCheckArgs('/dev/nbd1'), ['-c', '/dev/nbd1']);
});

test('fuse command lines: nbdfuse with a pid file and the export named in the URI; losetup with direct I/O and 4 KiB sectors', () => {
  assert.equal(nbdUnixUriFor('/run/dst x/nbd/vol.sock', 'vol'), 'nbd+unix:///vol?socket=/run/dst%20x/nbd/vol.sock');
  assert.deepEqual(nbdfuseArgs({ mountDir: '/run/dst/attach/vol', pidFile: '/run/dst/attach/vol.pid', socket: SOCK, exportName: 'vol', readonly: false }),
    ['-P', '/run/dst/attach/vol.pid', '/run/dst/attach/vol/nbd', `nbd+unix:///vol?socket=${SOCK}`]);
  assert.deepEqual(nbdfuseArgs({ mountDir: '/m/', pidFile: '/p', socket: SOCK, exportName: 'vol', readonly: true }),
    ['-P', '/p', '-r', '/m/nbd', `nbd+unix:///vol?socket=${SOCK}`]);
  assert.deepEqual(losetupAttachArgs('/m/nbd', false), ['--find', '--show', '--direct-io=on', '--sector-size', '4096', '/m/nbd']);
  assert.deepEqual(losetupAttachArgs('/m/nbd', true), ['--find', '--show', '--direct-io=on', '--sector-size', '4096', '--read-only', '/m/nbd']);
});

test('nbd method: says what is missing (tool, module, root)', async () => {
  const sys = new FakeNbdSystem();
  const m = createNbdMethod(deps(sys));
  assert.equal(await m.missing(), null);
  sys.root = false;
  assert.match((await m.missing())!, /needs root/);
  sys.root = true;
  sys.devs.delete('/dev/nbd0');
  assert.match((await m.missing())!, /\/dev\/nbd0 does not exist \(modprobe nbd/);
  sys.tools.delete('nbd-client');
  assert.match((await m.missing())!, /nbd-client is not installed \(apt-get install nbd-client/);
});

test('nbd method: picks the lowest free /dev/nbdN, runs nbd-client once with the exact argv, records the device', async () => {
  const sys = new FakeNbdSystem();
  assert.equal(await pickNbdDevice(sys), '/dev/nbd1', 'nbd0 is connected already');
  const m = createNbdMethod(deps(sys));
  const progress: object[] = [];
  const live = await m.attach(request({ readonly: true, progress: async (p) => { progress.push(p); } }));
  assert.equal(live.device, '/dev/nbd1');
  assert.equal(live.method, 'nbd');
  assert.deepEqual(progress, [{ device: '/dev/nbd1' }], 'the device is recorded before nbd-client runs');
  assert.deepEqual(sys.calls.map((c) => [c.cmd, ...c.args]), [
    ['nbd-client', '-unix', SOCK, '-N', 'vol', '-b', '4096', '-t', '1000000', '-readonly', '/dev/nbd1'],
  ]);
  assert.ok(sys.calls[0]!.timeoutMs !== undefined && sys.calls[0]!.timeoutMs > 0, 'nbd-client runs bounded');
  assert.deepEqual(sys.spawned, [], 'netlink mode leaves no process to spawn');
  assert.equal(await pickNbdDevice(sys), '/dev/nbd2');

  await live.teardown();
  assert.deepEqual(sys.calls.at(-1)!.args, ['-d', '/dev/nbd1']);
  assert.equal(await pickNbdDevice(sys), '/dev/nbd1', 'torn down: free again');
});

test('nbd method: a failing nbd-client is a clear error and leaves nothing connected', async () => {
  const sys = new FakeNbdSystem();
  sys.connectResult = { code: 1, signal: null, stdout: 'Negotiation: ', stderr: 'Error: Couldn\'t resolve the nbd netlink family, make sure the nbd module is loaded\n', timedOut: false };
  const m = createNbdMethod(deps(sys));
  await assert.rejects(m.attach(request()), (e: unknown) => e instanceof DstError && /nbd-client -unix .* exited 1: Error: Couldn't resolve the nbd netlink family/.test(e.message));
  assert.equal(await pickNbdDevice(sys), '/dev/nbd1');

  sys.connectResult = { code: null, signal: 'SIGKILL', stdout: '', stderr: '', timedOut: true };
  await assert.rejects(m.attach(request()), /timed out/);
});

test('nbd method: every /dev/nbdN busy → EBUSY naming nbds_max', async () => {
  const sys = new FakeNbdSystem();
  for (const d of ['/dev/nbd1', '/dev/nbd2', '/dev/nbd3']) sys.connect(d);
  await assert.rejects(createNbdMethod(deps(sys)).attach(request()), (e: unknown) => e instanceof DstError && e.code === 'DST_ERR_BUSY' && /nbds_max/.test(e.message));
  assert.equal(sys.calls.length, 0);
});

test('nbd method supervision: polls on the clock; a disconnected device breaks it once; unwatch stops it', async () => {
  const sys = new FakeNbdSystem();
  const clock = new FakeClock();
  const m = createNbdMethod(deps(sys, clock));
  const live = await m.attach(request());
  const broken: string[] = [];
  live.watch((r) => broken.push(r));
  for (let i = 0; i < 5; i++) {
    clock.advance(1000);
    await flush();
  }
  assert.deepEqual(broken, [], 'connected: not broken');
  sys.disconnect('/dev/nbd1');
  clock.advance(1000);
  await flush();
  assert.equal(broken.length, 1);
  assert.match(broken[0]!, /\/dev\/nbd1 was disconnected/);
  clock.advance(5000);
  await flush();
  assert.equal(broken.length, 1, 'reported once');
  assert.equal(clock.pending(), 0, 'no more polling');

  // after unwatch, a disconnect is expected (detach) and not reported
  const live2 = await m.attach(request());
  const broken2: string[] = [];
  live2.watch((r) => broken2.push(r));
  live2.unwatch();
  sys.disconnect(live2.device);
  clock.advance(5000);
  await flush();
  assert.deepEqual(broken2, []);
  assert.equal(clock.pending(), 0);
});

function manager(sys: FakeNbdSystem, node: AttachNodeInfo | null, t: Parameters<typeof tmpDir>[0]) {
  const stateDir = tmpDir(t, 'dst-attu-');
  const events: { event: EventName; fields: EventFields | undefined }[] = [];
  const clock = new FakeClock();
  const mgr = new AttachManager({
    stateDir, runtimeDir: '/run/dst-test', log: silentLogger, clock, sys, pollMs: 1000, settleTimeoutMs: 200,
    events: { emit: (_n, event, fields) => { events.push({ event, fields }); } },
    node: (name) => (name === 'vol' ? node : null),
  });
  return { mgr, events, stateDir, clock };
}

const READY: AttachNodeInfo = { role: 'remote', state: 'ready', reason: null, socket: SOCK, permissions: 'rw' };

test('manager + nbd: auto picks nbd when /dev/nbd0 exists; attached → broken → detached, with events and the state-dir record', async (t) => {
  const sys = new FakeNbdSystem();
  const { mgr, events, stateDir, clock } = manager(sys, READY, t);
  const att = await mgr.attach('vol', 'auto');
  assert.deepEqual(att, { device: '/dev/nbd1', method: 'nbd', state: 'attached' });
  assert.deepEqual(mgr.show('vol'), att);
  assert.deepEqual(events.map((e) => [e.event, e.fields?.device, e.fields?.method]), [['attached', '/dev/nbd1', 'nbd']]);
  const recFile = join(stateDir, 'attachments', 'vol.json');
  const rec = JSON.parse(readFileSync(recFile, 'utf8')) as { method: string; device: string; socket: string; enginePid: number };
  assert.equal(rec.method, 'nbd');
  assert.equal(rec.device, '/dev/nbd1');
  assert.equal(rec.socket, SOCK);
  assert.equal(rec.enginePid, process.pid);

  // double attach
  await assert.rejects(mgr.attach('vol', 'nbd'), (e: unknown) => e instanceof DstError && e.code === 'DST_ERR_EXISTS' && /already attached as \/dev\/nbd1/.test(e.message));

  // the kernel drops the device: broken + attach-broken
  sys.disconnect('/dev/nbd1');
  clock.advance(1000);
  await flush();
  assert.equal(mgr.show('vol')?.state, 'broken');
  assert.equal(events.at(-1)!.event, 'attach-broken');
  assert.match(String(events.at(-1)!.fields?.reason), /disconnected/);

  // detach of a broken attachment works and clears the record
  const det = await mgr.detach('vol', false);
  assert.deepEqual(det, { name: 'vol', device: '/dev/nbd1', method: 'nbd' });
  assert.equal(mgr.show('vol'), null);
  assert.equal(events.at(-1)!.event, 'detached');
  assert.ok(!existsSync(recFile), 'record removed');
});

test('manager + nbd: detach and node stop refused while the device is mounted, unless force (which unmounts first)', async (t) => {
  const sys = new FakeNbdSystem();
  const { mgr } = manager(sys, READY, t);
  await mgr.attach('vol', 'nbd');
  sys.files.set('/proc/self/mountinfo', '22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 43:32 / /mnt/my\\040data rw - ext4 /dev/nbd1 rw\n');
  await assert.rejects(mgr.detach('vol', false), (e: unknown) => e instanceof DstError && e.code === 'DST_ERR_BUSY'
    && /\/dev\/nbd1 is mounted on \/mnt\/my data; unmount it first \(umount \/mnt\/my data\), or use --force/.test(e.message));
  await assert.rejects(mgr.beforeStop('vol', false, 'node stop vol'), /node stop vol: vol is attached as \/dev\/nbd1, which is mounted on \/mnt\/my data/);
  assert.equal(mgr.show('vol')?.state, 'attached', 'a refused detach changes nothing');

  // force: umount (the fake's umount is "not faked" → exit 127), then umount -l, then nbd-client -d
  await mgr.detach('vol', true);
  const cmds = sys.calls.map((c) => [c.cmd, ...c.args].join(' '));
  assert.deepEqual(cmds.slice(-3), ['umount /mnt/my data', 'umount -l /mnt/my data', 'nbd-client -d /dev/nbd1']);
  assert.equal(mgr.show('vol'), null);
});

test('manager: clear refusals (unknown node, export node, not ready) and auto with nothing available', async (t) => {
  const sys = new FakeNbdSystem();
  let info: AttachNodeInfo | null = { ...READY, state: 'configured', socket: null };
  const stateDir = tmpDir(t, 'dst-attu-');
  const mgr = new AttachManager({
    stateDir, runtimeDir: '/run/dst-test', log: silentLogger, sys, events: { emit: () => {} },
    node: (name) => (name === 'vol' ? info : null),
  });
  await assert.rejects(mgr.attach('nope', 'auto'), /attach nope: no node named "nope"/);
  await assert.rejects(mgr.attach('vol', 'auto'), /attach vol: the node is configured, not ready; start it first: dst node start vol/);
  info = { ...READY, state: 'backoff', reason: 'link' };
  await assert.rejects(mgr.attach('vol', 'auto'), /the node is backoff \(link\), not ready; wait until it is ready/);
  info = { ...READY, role: 'export' };
  await assert.rejects(mgr.attach('vol', 'auto'), /vol is an export node/);
  info = READY;
  await assert.rejects(mgr.detach('vol', false), /detach vol: vol is not attached/);

  sys.devs.delete('/dev/nbd0');
  await assert.rejects(mgr.attach('vol', 'nbd'), /method nbd is not available: the nbd kernel module is not loaded/);
  // no nbd and no fuse (the fake has no nbdfuse): the error names both and how to install
  await assert.rejects(mgr.attach('vol', 'auto'),
    /no attach method is available here: nbd: .*modprobe nbd.*; fuse: nbdfuse is not installed \(apt-get install libnbd-bin fuse3\)/);
  assert.equal(mgr.show('vol'), null);
  assert.equal(sys.calls.length, 0, 'nothing ran');
});

test('manager: a node that fails breaks its attachment', async (t) => {
  const sys = new FakeNbdSystem();
  const { mgr, events } = manager(sys, READY, t);
  await mgr.attach('vol', 'nbd');
  mgr.nodeState('vol', 'backoff', 'link');
  assert.equal(mgr.show('vol')?.state, 'attached', 'an outage is ridden out, not a break');
  mgr.nodeState('vol', 'failed', 'identity-changed');
  assert.equal(mgr.show('vol')?.state, 'broken');
  assert.match(String(events.at(-1)!.fields?.reason), /failed \(identity-changed\)/);
});

test('manager: reconcile cleans a crashed engine\'s nbd leftover (nbd-client -d) and drops the record', async (t) => {
  const sys = new FakeNbdSystem();
  const stateDir = tmpDir(t, 'dst-attu-');
  const first = new AttachManager({
    stateDir, runtimeDir: '/run/dst-test', log: silentLogger, sys, clock: new FakeClock(), events: { emit: () => {} }, node: () => READY,
  });
  await first.attach('vol', 'nbd');
  // the engine "crashes": a new manager on the same state dir reconciles
  const second = new AttachManager({
    stateDir, runtimeDir: '/run/dst-test', log: silentLogger, sys, clock: new FakeClock(), events: { emit: () => {} }, node: () => READY,
  });
  await second.reconcile();
  assert.deepEqual(sys.calls.at(-1)!.args, ['-d', '/dev/nbd1']);
  assert.ok(!existsSync(join(stateDir, 'attachments', 'vol.json')));
  assert.equal(second.show('vol'), null, 'cleaned, not re-made');
});
