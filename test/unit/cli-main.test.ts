// The CLI run in-process: main(argv, { io, connect, ... }) against a fake control client.
// Checks what each command sends (paths absolute, sizes/durations parsed), how it renders
// (text and --json), and the exit codes: 0 ok, 1 refused by the engine, 2 usage, 3 no engine.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { main, type ControlClientLike, type EngineRunner } from '../../src/cli.js';
import { DstError } from '../../src/util/errors.js';
import { FAMILY } from '../../src/netlink/family.js';
import { DEFAULT_POLICY, deadlineMs, emptyStats, type AclEntry, type ControlApi, type ControlCommand, type CryptoShow, type EventRecord, type NodeShow, type StatusShow } from '../../src/engine/types.js';

type Responder = { [C in ControlCommand]?: (args: ControlApi[C]['args']) => ControlApi[C]['result'] | Promise<ControlApi[C]['result']> };

interface Harness {
  calls: { cmd: ControlCommand; args: unknown }[];
  sockets: string[];
  closes: number;
  out: string;
  err: string;
}

interface RunOptions {
  responses?: Responder;
  noEngine?: boolean;
  connectError?: unknown;
  env?: NodeJS.ProcessEnv;
  isTTY?: boolean;
  runEngine?: EngineRunner;
  signal?: AbortSignal;
  events?: (onEvent: (ev: EventRecord) => void, closed: () => void) => void;
}

const CWD = '/work/here';
const ENV_SOCKET = '/tmp/dst-test/dst.sock';

async function run(argv: string[], o: RunOptions = {}): Promise<Harness & { code: number }> {
  const h: Harness = { calls: [], sockets: [], closes: 0, out: '', err: '' };
  const connect = async (path: string): Promise<ControlClientLike> => {
    h.sockets.push(path);
    if (o.connectError) throw o.connectError;
    if (o.noEngine) throw new DstError('DST_ERR_NO_ENGINE', `no engine at ${path}: connect: ENOENT (start one with: dst engine)`, { errno: 'ENOENT' });
    return {
      request: (async (cmd: ControlCommand, args: unknown) => {
        h.calls.push({ cmd, args });
        const r = (o.responses as Record<string, ((a: unknown) => unknown) | undefined> | undefined)?.[cmd];
        if (!r) throw new DstError('DST_ERR_INTERNAL', `test: no response for ${cmd}`);
        return r(args);
      }) as ControlClientLike['request'],
      subscribe: async (node, onEvent) => {
        h.calls.push({ cmd: 'subscribe', args: { node } });
        let resolveClosed!: () => void;
        const closed = new Promise<void>((r) => { resolveClosed = r; });
        onEvent({ seq: 0, ts: 1_700_000_000_000, node: null, event: 'subscribed' });
        o.events?.(onEvent, resolveClosed);
        return { closed, close: () => resolveClosed() };
      },
      close: () => { h.closes++; },
    };
  };
  const code = await main(argv, {
    io: { out: (t) => { h.out += t; }, err: (t) => { h.err += t; }, isTTY: o.isTTY ?? false },
    connect,
    env: o.env ?? { DST_SOCKET: ENV_SOCKET },
    cwd: CWD,
    ...(o.runEngine ? { runEngine: o.runEngine } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  return { ...h, code };
}

const CRYPTO_NONE: CryptoShow = { cipher: 'none', hash: 'none', suite: 'none', threads: 4, cipherKeyFile: null, hashKeyFile: null };

function exportNode(over: Partial<NodeShow> = {}): NodeShow {
  return {
    name: 'vol', role: 'export', state: 'configured', reason: null, size: 1024 ** 3, autostart: false,
    disk: '/srv/vol.img', listen: '127.0.0.1:10825', readonly: false, acl: [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }],
    remote: null, export: null, permissions: null, nbd: null, attachment: null, sessionId: null,
    policy: { ...DEFAULT_POLICY, deadlineMs: deadlineMs(DEFAULT_POLICY) }, stats: emptyStats(), crypto: CRYPTO_NONE,
    ...over,
  };
}

function remoteNode(over: Partial<NodeShow> = {}): NodeShow {
  return exportNode({
    name: 'rv', role: 'remote', state: 'ready', disk: null, listen: null, readonly: null, acl: null,
    remote: '192.0.2.10:10825', export: null, permissions: 'rw', sessionId: '0123456789abcdef0123456789abcdef',
    nbd: { socket: '/run/dst/nbd/rv.sock', uri: 'nbd+unix:///?socket=/run/dst/nbd/rv.sock', listen: null },
    ...over,
  });
}

const ok = (n: NodeShow) => () => n;

function jsonError(err: string): { code: string; errno: string | null; message: string } {
  const parsed = JSON.parse(err) as { error: { code: string; errno: string | null; message: string } };
  assert.deepEqual(Object.keys(parsed), ['error']);
  assert.deepEqual(Object.keys(parsed.error).sort(), ['code', 'errno', 'message']);
  return parsed.error;
}

describe('global behaviour', () => {
  test('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await run(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.out.trim(), pkg.version);
    assert.equal(r.sockets.length, 0);
  });

  test('--help lists the command groups and exits 0 without connecting', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    for (const word of ['engine', 'node', 'security', 'crypto', 'status', 'events', 'config', 'completion']) {
      assert.match(r.out, new RegExp(`dst ${word}`));
    }
    assert.equal(r.err, '');
    assert.equal(r.sockets.length, 0);
  });

  test('node --help lists the subcommands', async () => {
    const r = await run(['node', '--help']);
    assert.equal(r.code, 0);
    for (const sub of ['add', 'start', 'stop', 'del', 'reconnect', 'list', 'show', 'set']) assert.match(r.out, new RegExp(`dst node ${sub}`));
  });

  test('every command of the control table has a CLI command whose help is the table\'s help text', async () => {
    for (const spec of Object.values(FAMILY)) {
      if (spec.cli === null) continue;
      const r = await run([...spec.cli.split(' '), '--help']);
      assert.equal(r.code, 0, `dst ${spec.cli} --help: ${r.err}`);
      assert.match(r.out, new RegExp(`^dst ${spec.cli}\\b`), spec.cli);
      // yargs wraps the description; compare with whitespace collapsed
      assert.ok(r.out.replace(/\s+/g, ' ').includes(spec.help.replace(/\s+/g, ' ')), `dst ${spec.cli} --help shows "${spec.help}"`);
    }
  });

  test('completion prints a shell script', async () => {
    const r = await run(['completion']);
    assert.equal(r.code, 0);
    assert.match(r.out, /dst-completions/);
  });

  test('no command, unknown command, unknown option, missing argument: exit 2 naming the thing', async () => {
    let r = await run([]);
    assert.equal(r.code, 2);
    assert.match(r.err, /give a command/);
    r = await run(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.err, /frobnicate/);
    r = await run(['node', 'list', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown option --bogus/);
    r = await run(['node', 'show']);
    assert.equal(r.code, 2);
    assert.match(r.err, /node show: missing NAME/);
    r = await run(['node']);
    assert.equal(r.code, 2);
    assert.match(r.err, /give a subcommand/);
    r = await run(['security', 'add', 'vol', '--addr', '10.0.0.1']);
    assert.equal(r.code, 2);
    assert.match(r.err, /missing required option --perm/);
    assert.equal(r.sockets.length, 0);
  });

  test('usage errors with --json are a JSON document on stderr', async () => {
    const r = await run(['node', 'list', '--bogus', '--json']);
    assert.equal(r.code, 2);
    assert.equal(r.out, '');
    const e = jsonError(r.err);
    assert.equal(e.code, 'DST_ERR_USAGE');
    assert.equal(e.errno, null);
    assert.match(e.message, /--bogus/);
  });

  test('no engine reachable: exit 3, message names the socket; --json shape', async () => {
    let r = await run(['status'], { noEngine: true });
    assert.equal(r.code, 3);
    assert.match(r.err, /no engine at \/tmp\/dst-test\/dst\.sock/);
    r = await run(['status', '--json'], { noEngine: true });
    assert.equal(r.code, 3);
    const e = jsonError(r.err);
    assert.deepEqual(e, { code: 'DST_ERR_NO_ENGINE', errno: 'ENOENT', message: e.message });
  });

  test('engine refusal: exit 1 with the engine\'s code, errno and message', async () => {
    const responses: Responder = {
      'node-show': () => { throw new DstError('DST_ERR_NOT_FOUND', 'node show nope: no node named "nope"', { errno: 'ENOENT' }); },
    };
    let r = await run(['node', 'show', 'nope'], { responses });
    assert.equal(r.code, 1);
    assert.equal(r.err, 'dst: node show nope: no node named "nope"\n');
    r = await run(['node', 'show', 'nope', '--json'], { responses });
    assert.equal(r.code, 1);
    assert.deepEqual(jsonError(r.err), { code: 'DST_ERR_NOT_FOUND', errno: 'ENOENT', message: 'node show nope: no node named "nope"' });
    // even a USAGE/INVALID code is an engine refusal (exit 1) when the engine says it
    r = await run(['node', 'show', 'x'], { responses: { 'node-show': () => { throw new DstError('DST_ERR_INVALID', 'bad'); } } });
    assert.equal(r.code, 1);
    assert.equal(r.closes, 1, 'the connection is closed after a refusal');
  });

  test('an unexpected (non-DstError) failure is exit 1, DST_ERR_INTERNAL', async () => {
    const r = await run(['status', '--json'], { connectError: new TypeError('boom') });
    assert.equal(r.code, 1);
    assert.equal(jsonError(r.err).code, 'DST_ERR_INTERNAL');
  });

  test('--socket overrides $DST_SOCKET and is made absolute', async () => {
    const status = (): StatusShow => statusFixture();
    let r = await run(['status', '--socket', 'rel/dst.sock'], { responses: { status } });
    assert.deepEqual(r.sockets, ['/work/here/rel/dst.sock']);
    r = await run(['status'], { responses: { status } });
    assert.deepEqual(r.sockets, [ENV_SOCKET]);
    r = await run(['status'], { responses: { status }, env: { DST_SOCKET: 'x.sock' } });
    assert.deepEqual(r.sockets, ['/work/here/x.sock']);
  });

  test('colour only on a terminal and never with --json', async () => {
    const responses: Responder = { 'node-list': () => [exportNode({ state: 'listening' })] };
    const esc = /\u001b\[/;
    let r = await run(['node', 'list'], { responses, isTTY: true });
    assert.match(r.out, esc);
    r = await run(['node', 'list'], { responses, isTTY: false });
    assert.doesNotMatch(r.out, esc);
    r = await run(['node', 'list', '--json'], { responses, isTTY: true });
    assert.doesNotMatch(r.out, esc);
  });
});

describe('node', () => {
  test('add export: paths absolute, sizes parsed, address normalised', async () => {
    const r = await run(['node', 'add', 'vol', '--disk', 'img/vol.img', '--listen', '0.0.0.0:10825', '--size', '1G', '--create', '2G', '--readonly'],
      { responses: { 'node-add': ok(exportNode()) } });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls, [{ cmd: 'node-add', args: {
      name: 'vol', role: 'export', size: 1024 ** 3, disk: '/work/here/img/vol.img', listen: '0.0.0.0:10825', readonly: true, create: 2 * 1024 ** 3,
    } }]);
    assert.match(r.out, /^added vol: export configured/);
  });

  test('add remote: --export, --nbd-listen, IPv6', async () => {
    const r = await run(['node', 'add', 'rv', '--remote', '[2001:db8::1]:10825', '--export', 'vol', '--nbd-listen', '127.0.0.1:0'],
      { responses: { 'node-add': ok(remoteNode({ state: 'configured' })) } });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[0]!.args, { name: 'rv', role: 'remote', size: null, remote: '[2001:db8::1]:10825', export: 'vol', nbdListen: '127.0.0.1:0' });
  });

  test('add: conflicting or missing options are usage errors before any request', async () => {
    const cases: [string[], RegExp][] = [
      [['node', 'add', 'v', '--disk', 'a', '--remote', 'h:1', '--listen', '1.2.3.4:1'], /either --disk or --remote, not both/],
      [['node', 'add', 'v'], /--disk PATH .* or --remote HOST:PORT/],
      [['node', 'add', 'v', '--disk', 'a'], /--listen ADDR:PORT is required with --disk/],
      [['node', 'add', 'v', '--remote', 'h:1', '--listen', '1.2.3.4:1'], /--listen is for export nodes/],
      [['node', 'add', 'v', '--remote', 'h:1', '--readonly'], /--readonly is for export nodes/],
      [['node', 'add', 'v', '--disk', 'a', '--listen', '1.2.3.4:1', '--export', 'x'], /--export is for remote nodes/],
      [['node', 'add', 'v', '--remote', 'h:0'], /invalid address "h:0" for --remote: port must be 1-65535/],
      [['node', 'add', 'v', '--disk', 'a', '--listen', 'nowhere'], /for --listen/],
      [['node', 'add', 'v', '--disk', 'a', '--listen', '1.2.3.4:1', '--size', '12X'], /invalid size "12X" for --size: expected an integer/],
      [['node', 'add', '-bad', '--disk', 'a', '--listen', '1.2.3.4:1'], /./],
      [['node', 'add', 'has.dot', '--disk', 'a', '--listen', '1.2.3.4:1'], /invalid node name "has.dot"/],
    ];
    for (const [argv, re] of cases) {
      const r = await run(argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
      assert.match(r.err, re, argv.join(' '));
      assert.equal(r.sockets.length, 0, `${argv.join(' ')} must not connect`);
    }
  });

  test('start: --wait parsed (default 10s); empty ACL warns', async () => {
    let r = await run(['node', 'start', 'vol'], { responses: { 'node-start': ok(exportNode({ state: 'listening', acl: [] })) } });
    assert.equal(r.code, 0);
    assert.deepEqual(r.calls[0], { cmd: 'node-start', args: { name: 'vol', waitMs: 10_000 } });
    assert.match(r.err, /ACL is empty.*dst security add vol --addr/);
    assert.match(r.out, /vol: export listening on 127\.0\.0\.1:10825/);
    r = await run(['node', 'start', 'rv', '--wait', '3s'], { responses: { 'node-start': ok(remoteNode()) } });
    assert.deepEqual(r.calls[0]!.args, { name: 'rv', waitMs: 3000 });
    assert.equal(r.err, '');
    r = await run(['node', 'start', 'rv', '--wait', 'soon']);
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid duration "soon" for --wait/);
  });

  test('start: a remote that is not ready after --wait is exit 1 saying why', async () => {
    const r = await run(['node', 'start', 'rv', '--wait', '1s'], { responses: { 'node-start': ok(remoteNode({ state: 'backoff', reason: 'denied' })) } });
    assert.equal(r.code, 1);
    assert.match(r.err, /rv: not ready after 1s \(state backoff, reason denied\); it keeps trying/);
  });

  test('stop --force, del, reconnect send the right requests', async () => {
    let r = await run(['node', 'stop', 'vol', '--force'], { responses: { 'node-stop': ok(exportNode()) } });
    assert.deepEqual(r.calls[0], { cmd: 'node-stop', args: { name: 'vol', force: true } });
    r = await run(['node', 'stop', 'vol'], { responses: { 'node-stop': ok(exportNode()) } });
    assert.deepEqual(r.calls[0]!.args, { name: 'vol', force: false });
    r = await run(['node', 'del', 'vol'], { responses: { 'node-del': (a) => ({ name: a.name }) } });
    assert.deepEqual(r.calls[0], { cmd: 'node-del', args: { name: 'vol' } });
    assert.equal(r.out, 'deleted vol\n');
    r = await run(['node', 'del', 'vol', '--json'], { responses: { 'node-del': (a) => ({ name: a.name }) } });
    assert.deepEqual(JSON.parse(r.out), { name: 'vol' });
    r = await run(['node', 'reconnect', 'rv'], { responses: { 'node-reconnect': ok(remoteNode({ state: 'connecting' })) } });
    assert.deepEqual(r.calls[0], { cmd: 'node-reconnect', args: { name: 'rv' } });
  });

  test('list: aligned table; --json is the array verbatim', async () => {
    const nodes = [exportNode({ state: 'listening' }), remoteNode({ name: 'remote-volume-long' })];
    let r = await run(['node', 'list'], { responses: { 'node-list': () => nodes } });
    assert.equal(r.code, 0);
    const lines = r.out.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^NAME\s+ROLE\s+STATE\s+SIZE\s+ADDRESS\s+LOCAL$/);
    const col = lines[0]!.indexOf('ROLE');
    assert.ok(lines[1]!.slice(col).startsWith('export '), lines[1]);
    assert.ok(lines[2]!.slice(col).startsWith('remote '), lines[2]);
    r = await run(['node', 'list', '--json'], { responses: { 'node-list': () => nodes } });
    assert.deepEqual(JSON.parse(r.out), nodes);
  });

  test('show: a readable block; --json is the NodeShow verbatim', async () => {
    const n = exportNode({ state: 'listening', stats: { ...emptyStats(), completed: 42 } });
    let r = await run(['node', 'show', 'vol'], { responses: { 'node-show': ok(n) } });
    assert.equal(r.code, 0);
    assert.match(r.out, /^vol\n/);
    assert.match(r.out, /disk\s+\/srv\/vol\.img/);
    assert.match(r.out, /acl\s+10\.0\.0\.0\/8 rw/);
    assert.match(r.out, /resend-timeout 5s, max-resends 12 \(deadline 65s\)/);
    assert.match(r.out, /completed 42/);
    r = await run(['node', 'show', 'rv'], { responses: { 'node-show': ok(remoteNode()) } });
    assert.match(r.out, /remote\s+192\.0\.2\.10:10825/);
    assert.match(r.out, /nbd\s+\/run\/dst\/nbd\/rv\.sock/);
    r = await run(['node', 'show', 'vol', '--json'], { responses: { 'node-show': ok(n) } });
    assert.deepEqual(JSON.parse(r.out), n);
  });

  test('set: durations, counts, sizes parsed; at least one option; bad values name the option', async () => {
    let r = await run(['node', 'set', 'vol', '--resend-timeout', '2s', '--max-resends', '3', '--ping-interval', '500', '--reconnect-delay', '1m',
      '--max-inflight', '32', '--max-request', '4M'], { responses: { 'node-set': ok(exportNode()) } });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[0]!.args, {
      name: 'vol', resendTimeoutMs: 2000, maxResends: 3, pingIntervalMs: 500, reconnectDelayMs: 60_000, maxInflight: 32, maxRequest: 4 * 1024 ** 2,
    });
    r = await run(['node', 'set', 'vol']);
    assert.equal(r.code, 2);
    assert.match(r.err, /at least one of --resend-timeout/);
    r = await run(['node', 'set', 'vol', '--max-resends', 'lots']);
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid number "lots" for --max-resends/);
    r = await run(['node', 'set', 'vol', '--max-inflight', '0']);
    assert.equal(r.code, 2);
    assert.match(r.err, /--max-inflight/);
    assert.equal(r.sockets.length, 0);
  });

  test('numeric-looking names stay strings', async () => {
    const r = await run(['node', 'show', '007'], { responses: { 'node-show': ok(exportNode({ name: '007' })) } });
    assert.deepEqual(r.calls[0]!.args, { name: '007' });
  });
});

describe('security', () => {
  const acl: AclEntry[] = [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }];

  test('add: address canonical, perm 0 = none, key file absolute', async () => {
    let r = await run(['security', 'add', 'vol', '--addr', '10.1.2.3/8', '--perm', 'rw'], { responses: { 'security-add': () => acl } });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[0]!.args, { name: 'vol', addr: '10.0.0.0/8', perm: 'rw', keyFile: null });
    assert.match(r.out, /ADDRESS\s+PERM\s+KEY-FILE\n10\.0\.0\.0\/8\s+rw\s+-/);
    r = await run(['security', 'add', 'vol', '--addr', '::ffff:192.0.2.7', '--perm', '0', '--key-file', 'keys/c7'], { responses: { 'security-add': () => acl } });
    assert.deepEqual(r.calls[0]!.args, { name: 'vol', addr: '192.0.2.7', perm: 'none', keyFile: '/work/here/keys/c7' });
  });

  test('add: bad address or perm names the option', async () => {
    let r = await run(['security', 'add', 'vol', '--addr', '10.0.0.0/33', '--perm', 'rw']);
    assert.equal(r.code, 2);
    assert.match(r.err, /for --addr: prefix must be 0-32/);
    r = await run(['security', 'add', 'vol', '--addr', '10.0.0.1', '--perm', 'x']);
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid permission "x" for --perm/);
  });

  test('del and list; list --json is the acl array', async () => {
    let r = await run(['security', 'del', 'vol', '--addr', '10.0.0.0/8'], { responses: { 'security-del': () => [] } });
    assert.deepEqual(r.calls[0], { cmd: 'security-del', args: { name: 'vol', addr: '10.0.0.0/8' } });
    assert.match(r.out, /ACL empty: nobody may connect/);
    r = await run(['security', 'list', 'vol', '--json'], { responses: { 'security-list': () => acl } });
    assert.deepEqual(JSON.parse(r.out), acl);
  });
});

describe('crypto', () => {
  test('set: names mapped, key files absolute, threads parsed', async () => {
    const shown: CryptoShow = { cipher: 'aes-gcm', hash: 'none', suite: 'aes-gcm', threads: 2, cipherKeyFile: '/work/here/k', hashKeyFile: null };
    const r = await run(['crypto', 'set', 'vol', '--cipher', 'gcm(aes)', '--cipher-key-file', 'k', '--threads', '2'], { responses: { 'crypto-set': () => shown } });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[0]!.args, { name: 'vol', cipher: 'aes-gcm', cipherKeyFile: '/work/here/k', threads: 2 });
    assert.match(r.out, /suite\s+aes-gcm/);
    assert.equal(r.err, '');
  });

  test('set: an unkeyed digest warns that it authenticates nothing', async () => {
    const shown: CryptoShow = { cipher: 'none', hash: 'sha256', suite: 'none+sha256', threads: 2, cipherKeyFile: null, hashKeyFile: null };
    let r = await run(['crypto', 'set', 'vol', '--hash', 'sha256'], { responses: { 'crypto-set': () => shown } });
    assert.equal(r.code, 0);
    assert.deepEqual(r.calls[0]!.args, { name: 'vol', hash: 'sha256' });
    assert.match(r.err, /warning: .*detects accidents only and authenticates nothing/);
    const keyed: CryptoShow = { ...shown, suite: 'none+hmac-sha256', hashKeyFile: '/k' };
    r = await run(['crypto', 'set', 'vol', '--hash', 'hmac(sha256)', '--hash-key-file', '/k'], { responses: { 'crypto-set': () => keyed } });
    assert.deepEqual(r.calls[0]!.args, { name: 'vol', hash: 'sha256', hashKeyFile: '/k' });
    assert.equal(r.err, '');
  });

  test('set: nothing to set or bad names are usage errors', async () => {
    let r = await run(['crypto', 'set', 'vol']);
    assert.equal(r.code, 2);
    assert.match(r.err, /at least one of --cipher/);
    r = await run(['crypto', 'set', 'vol', '--cipher', 'rot13']);
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid cipher "rot13" for --cipher/);
    r = await run(['crypto', 'set', 'vol', '--hash', 'md5']);
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid hash "md5" for --hash/);
  });

  test('show --json is the crypto object; clear', async () => {
    let r = await run(['crypto', 'show', 'vol', '--json'], { responses: { 'crypto-show': () => CRYPTO_NONE } });
    assert.deepEqual(JSON.parse(r.out), CRYPTO_NONE);
    r = await run(['crypto', 'clear', 'vol'], { responses: { 'crypto-clear': () => CRYPTO_NONE } });
    assert.deepEqual(r.calls[0], { cmd: 'crypto-clear', args: { name: 'vol' } });
  });
});

function statusFixture(): StatusShow {
  return {
    version: '0.1.0', pid: 4242, uptimeMs: 3_723_000, socket: ENV_SOCKET, stateDir: '/var/lib/dst',
    limits: { maxControlMessage: 1 << 20, controlPartialTimeoutMs: 10_000, maxConnectionsPerExport: 64, helloTimeoutMs: 10_000,
      maxInflightPerConnection: 128, maxInflightCap: 128, maxRequestCap: 32 << 20 },
    cryptoThreads: 4,
    cipherImpl: 'node:crypto: DST_NATIVE_CIPHER=0', diskLock: 'flock (native addon)',
    heap: 'full GC + malloc_trim after large connections close, crypto workers: young GC every 4 MiB',
    nodes: [{ name: 'vol', role: 'export', state: 'listening', attachment: null }],
    config: { file: '/etc/dst/dst.conf', autosave: true, unsaved: false },
  };
}

describe('status, config', () => {
  test('status: a short summary; --json verbatim', async () => {
    let r = await run(['status'], { responses: { status: statusFixture } });
    assert.equal(r.code, 0);
    assert.match(r.out, /dst engine 0\.1\.0, pid 4242, up 1h2m3s/);
    assert.match(r.out, /nodes 1 \(1 export, 0 remote\)/);
    r = await run(['status', '--json'], { responses: { status: statusFixture } });
    assert.deepEqual(JSON.parse(r.out), statusFixture());
  });

  test('config show/save/load: paths absolute, save without a file sends null', async () => {
    let r = await run(['config', 'show'], { responses: { 'config-show': () => ({ text: '[engine]\nlog-level = info\n' }) } });
    assert.equal(r.out, '[engine]\nlog-level = info\n');
    r = await run(['config', 'save'], { responses: { 'config-save': () => ({ file: '/etc/dst/dst.conf' }) } });
    assert.deepEqual(r.calls[0]!.args, { file: null });
    assert.equal(r.out, 'saved /etc/dst/dst.conf\n');
    r = await run(['config', 'save', 'my.conf'], { responses: { 'config-save': (a) => ({ file: a.file! }) } });
    assert.deepEqual(r.calls[0]!.args, { file: '/work/here/my.conf' });
    r = await run(['config', 'load', 'my.conf', '--json'], { responses: { 'config-load': () => ({ nodes: ['a', 'b'] }) } });
    assert.deepEqual(r.calls[0]!.args, { file: '/work/here/my.conf' });
    assert.deepEqual(JSON.parse(r.out), { nodes: ['a', 'b'] });
  });
});

describe('events', () => {
  test('--json: one object per line, subscribed first; ends 0 when interrupted', async () => {
    const ac = new AbortController();
    const r = await run(['events', '--json', '--node', 'vol'], {
      signal: ac.signal,
      events: (emit) => {
        emit({ seq: 1, ts: 1_700_000_000_100, node: 'vol', event: 'state-changed', from: 'configured', to: 'listening', reason: null });
        setImmediate(() => ac.abort());
      },
    });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls, [{ cmd: 'subscribe', args: { node: 'vol' } }]);
    const lines = r.out.trimEnd().split('\n').map((l) => JSON.parse(l) as EventRecord);
    assert.equal(lines.length, 2);
    assert.equal(lines[0]!.event, 'subscribed');
    assert.deepEqual(lines[1], { seq: 1, ts: 1_700_000_000_100, node: 'vol', event: 'state-changed', from: 'configured', to: 'listening', reason: null });
  });

  test('text: one readable line per event; the engine going away is exit 3', async () => {
    const r = await run(['events'], {
      signal: new AbortController().signal,
      events: (emit, closed) => {
        emit({ seq: 2, ts: Date.UTC(2024, 4, 1, 10), node: 'rv', event: 'txn-failed', op: 'write', offset: 4096, length: 512, errno: 'EIO' });
        setImmediate(closed);
      },
    });
    assert.equal(r.code, 3);
    const lines = r.out.trimEnd().split('\n');
    assert.match(lines[0]!, /subscribed$/);
    assert.equal(lines[1], '2024-05-01T10:00:00.000Z rv txn-failed op=write offset=4096 length=512 errno=EIO');
    assert.match(r.err, /closed the event stream/);
  });
});

describe('engine', () => {
  test('dst engine passes parsed options to runEngine and waits until it closes', async () => {
    const got: { opts: Parameters<EngineRunner>[0] | null } = { opts: null };
    const runEngine: EngineRunner = async (opts) => {
      got.opts = opts;
      return { closed: Promise.resolve(), shutdown: async () => {} };
    };
    let r = await run(['engine', '--no-config', '--state-dir', 'state', '--group', 'dst', '--log-level', 'debug', '--log-format', 'json', '--socket', 'run/dst.sock'], { runEngine });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(got.opts, {
      socket: '/work/here/run/dst.sock', stateDir: '/work/here/state', config: null, configRequired: false, group: 'dst',
      logLevel: 'debug', logFormat: 'json', handleSignals: true,
    });
    r = await run(['engine', '--config', 'dst.conf'], { runEngine });
    assert.equal(r.code, 0, r.err);
    assert.equal(got.opts!.config, '/work/here/dst.conf');
    assert.equal(got.opts!.configRequired, true);
    assert.equal(got.opts!.logLevel, null, 'no --log-level: the config decides');
    assert.equal(got.opts!.socket, ENV_SOCKET);
  });

  test('dst engine: bad options exit 2; runEngine refusing is exit 1', async () => {
    const refuse: EngineRunner = async () => { throw new DstError('DST_ERR_INVALID', 'runtime dir /x is world-writable', { errno: 'EPERM' }); };
    let r = await run(['engine', '--no-config', '--group', 'bad group!'], { runEngine: refuse });
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid group "bad group!" for --group/);
    r = await run(['engine', '--no-config', '--log-format', 'xml'], { runEngine: refuse });
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid value "xml" for --log-format/);
    r = await run(['engine', '--no-config', '--socket', '/' + 'x'.repeat(120)], { runEngine: refuse });
    assert.equal(r.code, 2);
    assert.match(r.err, /at most 107/);
    r = await run(['engine', '--no-config', '--json'], { runEngine: refuse });
    assert.equal(r.code, 1);
    assert.deepEqual(jsonError(r.err), { code: 'DST_ERR_INVALID', errno: 'EPERM', message: 'runtime dir /x is world-writable' });
  });
});
