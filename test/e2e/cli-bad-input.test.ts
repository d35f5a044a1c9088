// Every bad input gets a clear error naming the thing that is wrong, the right exit code,
// and changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import { run } from '../helpers/tools.js';

test('bad names, addresses, sizes, durations, disks, ports, algorithms and key files', async (t) => {
  const eng = await startEngine(t);
  const disk = join(eng.dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(1024 * 1024));
  await eng.dstJson(['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0']);
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  t.after(() => busy.close());
  const busyPort = (busy.address() as { port: number }).port;
  const shortKey = join(eng.dir, 'short.key');
  writeFileSync(shortKey, 'tooshort');
  const unreadable = join(eng.dir, 'missing.key');

  // code: the exit code, or the codes allowed where syntax-vs-meaning is the CLI's choice (2 or 1)
  const cases: { args: string[]; code: number | number[]; re: RegExp }[] = [
    { args: ['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0'], code: 1, re: /vol.*(exists|already)/i },
    { args: ['node', 'add', 'bad.name', '--disk', disk, '--listen', '127.0.0.1:0'], code: 2, re: /bad\.name/ },
    { args: ['node', 'add', '-x', '--disk', disk, '--listen', '127.0.0.1:0'], code: 2, re: /./ },
    { args: ['node', 'add', 'v2', '--disk', disk, '--listen', '127.0.0.1'], code: 2, re: /127\.0\.0\.1/ },
    { args: ['node', 'add', 'v2', '--disk', disk, '--listen', '127.0.0.1:99999'], code: 2, re: /port/ },
    { args: ['node', 'add', 'v2', '--disk', disk, '--listen', `127.0.0.1:${busyPort}`], code: 1, re: new RegExp(`${busyPort}`) },
    { args: ['node', 'add', 'v2', '--disk', join(eng.dir, 'nope.img'), '--listen', '127.0.0.1:0'], code: 1, re: /nope\.img/ },
    { args: ['node', 'add', 'v2', '--disk', disk, '--listen', '127.0.0.1:0', '--size', '2M'], code: 1, re: /size/ },
    { args: ['node', 'add', 'v2', '--disk', disk, '--listen', '127.0.0.1:0', '--size', '12X'], code: 2, re: /12X/ },
    { args: ['node', 'add', 'v2', '--remote', 'host'], code: 2, re: /host/ },
    { args: ['node', 'add', 'v2', '--disk', disk, '--remote', '127.0.0.1:1'], code: 2, re: /./ },
    { args: ['node', 'set', 'vol', '--resend-timeout', '5x'], code: 2, re: /5x/ },
    { args: ['node', 'set', 'vol', '--max-inflight', '1000'], code: [1, 2], re: /max-inflight|maxInflight|inflight/i },
    { args: ['node', 'show', 'ghost'], code: 1, re: /ghost/ },
    { args: ['node', 'start', 'ghost'], code: 1, re: /ghost/ },
    { args: ['security', 'add', 'vol', '--addr', '300.1.1.1', '--perm', 'rw'], code: 2, re: /300\.1\.1\.1/ },
    { args: ['security', 'add', 'vol', '--addr', '10.0.0.0/8', '--perm', 'x'], code: 2, re: /perm|x/ },
    { args: ['security', 'del', 'vol', '--addr', '10.9.9.9'], code: 1, re: /10\.9\.9\.9/ },
    { args: ['crypto', 'set', 'vol', '--cipher', 'des'], code: [1, 2], re: /des/ },
    { args: ['crypto', 'set', 'vol', '--cipher', 'aes-gcm', '--cipher-key-file', unreadable], code: 1, re: /missing\.key/ },
    { args: ['crypto', 'set', 'vol', '--cipher', 'aes-gcm', '--cipher-key-file', shortKey], code: 1, re: /short\.key/ },
    { args: ['crypto', 'set', 'vol', '--hash', 'md5'], code: [1, 2], re: /md5/ },
    { args: ['node', 'frobnicate'], code: 2, re: /./ },
  ];
  for (const c of cases) {
    const res = await eng.dst(c.args);
    assert.ok((Array.isArray(c.code) ? c.code : [c.code]).includes(res.code ?? -1), `dst ${c.args.join(' ')} → exit ${res.code}, stderr: ${res.stderr}`);
    assert.match(res.stderr, c.re, `dst ${c.args.join(' ')}: ${res.stderr}`);
  }
  const after = await eng.dstJson<{ name: string; acl: unknown[]; crypto: { suite: string }; policy: { maxInflight: number } }[]>(['node', 'list']);
  assert.equal(after.length, 1, 'nothing was added');
  assert.deepEqual(after[0]!.acl, []);
  assert.equal(after[0]!.crypto.suite, 'none');
  assert.equal(after[0]!.policy.maxInflight, 64);

  const json = await eng.dst(['--json', 'node', 'show', 'ghost']);
  assert.equal(json.code, 1);
  const err = JSON.parse(json.stderr).error;
  assert.match(err.code, /^DST_ERR_/);
  assert.ok('errno' in err && typeof err.message === 'string');
  chmodSync(shortKey, 0o600);
});

test('no engine reachable → exit 3 naming the socket', async (t) => {
  const eng = await startEngine(t);
  const res = await run(process.execPath, ['bin/dst', '--socket', join(eng.dir, 'nobody-here.sock'), 'status']);
  assert.equal(res.code, 3, res.stderr);
  assert.match(res.stderr, /nobody-here\.sock/);
});
