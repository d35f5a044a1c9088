// The CLI in-process: `dst engine` hands its parsed options to runEngine; bad options, refusal.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { type EngineRunner } from '../../src/cli.js';
import { DstError } from '../../src/util/errors.js';
import { ENV_SOCKET, run, jsonError } from '../helpers/cli-harness.js';

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
