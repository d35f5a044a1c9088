// The original utility's one-shot form (`dst -n NAME ...`): everything is validated before the
// first request, the requests go in the original order over one connection, and a failure after
// the add rolls the add back and reports the original error.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, type ControlClientLike } from '../../src/cli.js';
import { isOneShot, parseOneShotArgv } from '../../src/commands/oneshot.js';
import { DstError } from '../../src/util/errors.js';
import { DEFAULT_POLICY, deadlineMs, emptyStats, type ControlCommand, type CryptoShow, type NodeShow } from '../../src/engine/types.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dst-oneshot-'));
  await writeFile(join(dir, 'disk.img'), Buffer.alloc(4096));
  await writeFile(join(dir, 'key'), 'ab'.repeat(32));
  await writeFile(join(dir, 'hkey'), 'cd'.repeat(32));
  await writeFile(join(dir, 'sec.conf'), '# clients\n3 192.168.4.81\n\n1 10.0.0.0/8   # readers\n0x0 10.9.9.9\n');
  await writeFile(join(dir, 'bad.conf'), '3 192.168.4.81\n4 10.0.0.1\n');
});
after(async () => { await rm(dir, { recursive: true, force: true }); });

const CRYPTO: CryptoShow = { cipher: 'none', hash: 'none', suite: 'none', threads: 3, cipherKeyFile: null, hashKeyFile: null };

function node(over: Partial<NodeShow> = {}): NodeShow {
  return {
    name: 'storage', role: 'export', state: 'configured', reason: null, size: 4096, autostart: false,
    disk: join(dir, 'disk.img'), listen: '0.0.0.0:1025', readonly: false, acl: [],
    remote: null, export: null, layout: null, chunk: null, region: null, degraded: null, legs: null, verify: null, splitBrain: null, uuid: null,
    permissions: null, nbd: null, attachment: null, sessionId: null, backend: null,
    policy: { ...DEFAULT_POLICY, deadlineMs: deadlineMs(DEFAULT_POLICY) }, stats: emptyStats(), crypto: CRYPTO, latency: null, ...over,
  };
}

type Handler = (args: any) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any

async function run(argv: string[], responses: Partial<Record<ControlCommand, Handler>> = {}) {
  const calls: { cmd: ControlCommand; args: unknown }[] = [];
  let connects = 0;
  let out = '';
  let err = '';
  const connect = async (): Promise<ControlClientLike> => {
    connects++;
    return {
      request: (async (cmd: ControlCommand, args: unknown) => {
        calls.push({ cmd, args });
        const r = responses[cmd];
        if (!r) throw new DstError('DST_ERR_INTERNAL', `test: no response for ${cmd}`);
        return r(args);
      }) as ControlClientLike['request'],
      subscribe: async () => { throw new Error('not used'); },
      close: () => {},
    };
  };
  const code = await main(argv, {
    io: { out: (t) => { out += t; }, err: (t) => { err += t; }, isTTY: false },
    connect, env: { DST_SOCKET: '/tmp/dst-test/dst.sock' }, cwd: dir,
  });
  return { code, calls, connects, out, err, cmds: calls.map((c) => c.cmd) };
}

const all: Partial<Record<ControlCommand, Handler>> = {
  'node-add': (a: { name: string; role: 'export' | 'remote' }) => node({ name: a.name, role: a.role }),
  'security-load': (a: { entries: unknown }) => a.entries,
  'crypto-set': () => ({ ...CRYPTO, cipher: 'aes-gcm', suite: 'aes-gcm' }),
  'node-set': () => node(),
  'node-start': () => node({ state: 'listening' }),
  'node-show': () => node(),
  'node-stop': () => node(),
  'node-del': (a: { name: string }) => ({ name: a.name }),
};

describe('recognising and parsing the one-shot form', () => {
  test('detected by -n (also bundled), not by subcommands', () => {
    assert.equal(isOneShot(['-n', 'x', '-D']), true);
    assert.equal(isOneShot(['-nx', '-D']), true);
    assert.equal(isOneShot(['-Rn', 'x']), true);
    assert.equal(isOneShot(['node', 'list']), false);
    assert.equal(isOneShot(['--', '-n']), false);
    assert.equal(isOneShot(['node', 'show', 'x', '--json']), false);
  });

  test('getopt semantics: attached values, bundles, --socket/--json', () => {
    const p = parseOneShotArgv(['-nvol', '-RD', '-p', '1025', '--socket=/s', '--json']);
    assert.deepEqual([...p.opts], [['n', 'vol'], ['R', true], ['D', true], ['p', '1025']]);
    assert.equal(p.socket, '/s');
    assert.equal(p.json, true);
    assert.throws(() => parseOneShotArgv(['-n', 'a', '-n', 'b']), /-n given twice/);
    assert.throws(() => parseOneShotArgv(['-n', 'a', '-q']), /unknown option -q/);
    assert.throws(() => parseOneShotArgv(['-n']), /option -n needs a value/);
    assert.throws(() => parseOneShotArgv(['-n', 'a', 'stray']), /unexpected argument "stray"/);
  });

  test('-h prints the one-shot usage', async () => {
    const r = await run(['-n', 'x', '-h']);
    assert.equal(r.code, 0);
    assert.match(r.out, /one-shot form/);
    assert.equal(r.connects, 0);
  });
});

describe('export', () => {
  test('add, security load, crypto, policy, start: in order, on one connection', async () => {
    const r = await run(['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-s', 'sec.conf', '-S', '0x1000',
      '-c', 'gcm(aes)', '-C', 'key', '-t', '3', '-T', '10000', '-R'], all);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.connects, 1);
    assert.deepEqual(r.cmds, ['node-add', 'security-load', 'crypto-set', 'node-set', 'node-start']);
    assert.deepEqual(r.calls[0]!.args, {
      name: 'storage', role: 'export', size: 4096, disk: join(dir, 'disk.img'), listen: '0.0.0.0:1025', readonly: false, create: null,
    });
    assert.deepEqual(r.calls[1]!.args, { name: 'storage', entries: [
      { addr: '192.168.4.81', perm: 'rw', keyFile: null },
      { addr: '10.0.0.0/8', perm: 'r', keyFile: null },
      { addr: '10.9.9.9', perm: 'none', keyFile: null },
    ] });
    assert.deepEqual(r.calls[2]!.args, { name: 'storage', cipher: 'aes-gcm', cipherKeyFile: join(dir, 'key'), threads: 3 });
    assert.deepEqual(r.calls[3]!.args, { name: 'storage', resendTimeoutMs: 10_000 });
    assert.deepEqual(r.calls[4]!.args, { name: 'storage', waitMs: 10_000 });
    assert.match(r.out, /storage: export listening/);
  });

  test('-S 0 is the disk\'s size; without -s it warns that nobody may connect', async () => {
    const r = await run(['-n', 'storage', '-d', 'disk.img', '-a', '::1', '-p', '1025', '-S', '0'], all);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.cmds, ['node-add']);
    assert.equal((r.calls[0]!.args as { size: unknown }).size, null);
    assert.equal((r.calls[0]!.args as { listen: unknown }).listen, '[::1]:1025');
    assert.match(r.err, /no clients will be allowed to connect/);
  });

  test('an unkeyed hash (-x sha256 without -H) warns', async () => {
    const r = await run(['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-s', 'sec.conf', '-x', 'sha256'], {
      ...all, 'crypto-set': () => ({ ...CRYPTO, hash: 'sha256', suite: 'none+sha256' }),
    });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[2]!.args, { name: 'storage', hash: 'sha256' });
    assert.deepEqual(r.cmds, ['node-add', 'security-load', 'crypto-set', 'node-show'], 'the final node is shown fresh');
    assert.equal(r.err.match(/authenticates nothing/g)?.length, 1, r.err);
  });
});

describe('validation happens before the first request', () => {
  const cases: [string[], RegExp][] = [
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-c', 'gcm(aes)'], /-c CIPHER needs -C KEYFILE/],
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-C', 'key'], /-C KEYFILE needs -c CIPHER/],
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-x', 'hmac(sha256)'], /is keyed: give -H KEYFILE/],
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-H', 'hkey'], /-H KEYFILE needs -x HASH/],
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-c', 'cbc(aes)', '-C', 'key'], /needs a keyed hash/],
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-c', 'gcm(aes)', '-C', 'nokey'], /cipher key file .*nokey for -C/],
    [['-n', 'storage', '-d', 'missing.img', '-a', '0.0.0.0', '-p', '1025'], /disk .*missing\.img for -d/],
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0'], /-d needs -a ADDR .* and -p PORT/],
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '70000'], /for -a\/-p: port must be/],
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-s', 'nosuch.conf'], /cannot read security file/],
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-s', 'bad.conf'], /bad\.conf:2: invalid permission "4"/],
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-S', 'lots'], /invalid size "lots" for -S/],
    [['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-t', 'x'], /for -t/],
    [['-n', 'storage', '-a', '192.0.2.1', '-p', '1025', '-s', 'sec.conf'], /-s \(security file\) is for export nodes/],
    [['-n', 'storage', '-a', '192.0.2.1', '-p', '0'], /port must be 1-65535/],
    [['-n', 'storage', '-D', '-R'], /-D \(stop and delete\) takes only -n NAME/],
    [['-n', 'storage'], /nothing to do/],
    [['-n', 'bad.name', '-D'], /invalid node name \(-n\) "bad\.name"/],
  ];
  for (const [argv, re] of cases) {
    test(argv.join(' '), async () => {
      const r = await run(argv, all);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, re);
      assert.equal(r.connects, 0, 'no request before everything is validated');
    });
  }

  test('--json errors keep the JSON shape', async () => {
    const r = await run(['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-s', 'nosuch.conf', '--json'], all);
    assert.equal(r.code, 2);
    const e = (JSON.parse(r.err) as { error: { code: string; errno: string } }).error;
    assert.equal(e.code, 'DST_ERR_NOT_FOUND');
    assert.equal(e.errno, 'ENOENT');
  });
});

describe('rollback', () => {
  test('a failing later request removes the added node and reports the original error', async () => {
    const r = await run(['-n', 'storage', '-d', 'disk.img', '-a', '0.0.0.0', '-p', '1025', '-s', 'sec.conf', '-c', 'gcm(aes)', '-C', 'key', '--json'], {
      ...all,
      'crypto-set': () => { throw new DstError('DST_ERR_INVALID', 'crypto set storage: key file too short', { errno: 'EINVAL' }); },
    });
    assert.equal(r.code, 1);
    assert.deepEqual(r.cmds, ['node-add', 'security-load', 'crypto-set', 'node-del']);
    const lines = r.err.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, { message: string; code?: string }>);
    assert.match(lines[0]!.warning!.message, /rolled back/);
    assert.deepEqual(lines.at(-1), { error: { code: 'DST_ERR_INVALID', errno: 'EINVAL', message: 'crypto set storage: key file too short' } });
  });

  test('a failing start is stopped (force) before the delete', async () => {
    const r = await run(['-n', 'storage', '-a', '192.0.2.1', '-p', '1025', '-R'], {
      ...all,
      'node-start': () => { throw new DstError('DST_ERR_TIMEOUT', 'node start storage: not ready after 10s', { errno: 'ETIMEDOUT' }); },
    });
    assert.equal(r.code, 1);
    assert.deepEqual(r.cmds, ['node-add', 'node-start', 'node-stop', 'node-del']);
    assert.deepEqual(r.calls[2]!.args, { name: 'storage', force: true });
    assert.deepEqual(r.calls[0]!.args, { name: 'storage', role: 'remote', size: null, remote: '192.0.2.1:1025', export: null, nbdListen: null });
    assert.match(r.err, /not ready after 10s/);
  });

  test('a failing add is not rolled back (nothing was added)', async () => {
    const r = await run(['-n', 'storage', '-a', '192.0.2.1', '-p', '1025'], {
      ...all,
      'node-add': () => { throw new DstError('DST_ERR_EXISTS', 'node add storage: exists'); },
    });
    assert.equal(r.code, 1);
    assert.deepEqual(r.cmds, ['node-add']);
  });

  test('a failed rollback is reported as well', async () => {
    const r = await run(['-n', 'storage', '-a', '192.0.2.1', '-p', '1025', '-T', '500'], {
      ...all,
      'node-set': () => { throw new DstError('DST_ERR_INVALID', 'node set: nope'); },
      'node-del': () => { throw new DstError('DST_ERR_STATE', 'node del: busy'); },
    });
    assert.equal(r.code, 1);
    assert.match(r.err, /could not remove the half-configured node storage/);
    assert.match(r.err, /dst: node set: nope/);
  });
});

describe('delete and start', () => {
  test('-D stops (drains) then deletes', async () => {
    const r = await run(['-n', 'storage', '-D'], all);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls, [{ cmd: 'node-stop', args: { name: 'storage', force: false } }, { cmd: 'node-del', args: { name: 'storage' } }]);
    assert.equal(r.out, 'stopped and deleted storage\n');
  });

  test('-n NAME -R only starts', async () => {
    const r = await run(['-n', 'storage', '-R'], all);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.cmds, ['node-start']);
  });
});
