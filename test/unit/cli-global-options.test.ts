// The CLI in-process: --socket over $DST_SOCKET (made absolute), and colour only on a terminal.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { type StatusShow } from '../../src/engine/types.js';
import { Responder, ENV_SOCKET, run, exportNode, statusFixture } from '../helpers/cli-harness.js';

describe('global behaviour', () => {
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
