// The CLI in-process: exit codes and error reports (2 usage, 3 no engine, 1 refused or unexpected),
// in text and as a --json document on stderr.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { DstError } from '../../src/util/errors.js';
import { Responder, run, jsonError } from '../helpers/cli-harness.js';

describe('global behaviour', () => {
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
});
