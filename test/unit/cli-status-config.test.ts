// The CLI in-process: `dst status` and `dst config show/save/load`.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { run, statusFixture } from '../helpers/cli-harness.js';

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
