// The CLI in-process: `dst node …` sends what it parsed (paths absolute, sizes and durations
// parsed, addresses normalised) and renders lists and nodes in text and --json.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { emptyStats } from '../../src/engine/types.js';
import { run, exportNode, remoteNode, ok } from '../helpers/cli-harness.js';

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

  test('add a stripe: every --remote is a leg, in order; --export fills legs that name none', async () => {
    const r = await run(['node', 'add', 'st', '--layout', 'stripe', '--remote', 'a:1/x', '--remote', '[::1]:2', '--export', 'd', '--chunk', '64K'],
      { responses: { 'node-add': ok(remoteNode({ state: 'configured' })) } });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[0]!.args, {
      name: 'st', role: 'remote', size: null, nbdListen: null, layout: 'stripe',
      legs: [{ remote: 'a:1', export: 'x' }, { remote: '[::1]:2', export: 'd' }], chunk: 64 * 1024, region: 1024 * 1024,
    });
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
      [['node', 'add', 'v', '--disk', 'a', '--disk', 'b', '--listen', '1.2.3.4:1'], /--disk given more than once/],
      [['node', 'add', 'v', '--remote', 'h:1', '--remote', 'h:2'], /2 --remote options need --layout/],
      [['node', 'add', 'v', '--layout', 'stripe', '--remote', 'h:1'], /--layout stripe needs at least two --remote/],
      [['node', 'add', 'v', '--layout', 'stripe', '--remote', 'h:1', '--remote', 'h:2', '--chunk', '3K'], /--chunk/],
      [['node', 'add', 'v', '--layout', 'linear', '--remote', 'h:1', '--remote', 'h:0'], /invalid leg 1 address "h:0"/],
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

  test('start --degraded --force-init and resolve --keep send the mirror\'s one-shot options', async () => {
    let r = await run(['node', 'start', 'rv', '--degraded', '--force-init'], { responses: { 'node-start': ok(remoteNode()) } });
    assert.deepEqual(r.calls[0]!.args, { name: 'rv', waitMs: 10_000, degraded: true, forceInit: true });
    r = await run(['node', 'resolve', 'rv', '--keep', '1'], { responses: { 'node-resolve': ok(remoteNode()) } });
    assert.equal(r.code, 0);
    assert.deepEqual(r.calls[0], { cmd: 'node-resolve', args: { name: 'rv', keep: 1 } });
    r = await run(['node', 'resolve', 'rv']);
    assert.equal(r.code, 2);
    assert.match(r.err, /keep/);
    r = await run(['node', 'resolve', 'rv', '--keep', 'x']);
    assert.equal(r.code, 2);
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
