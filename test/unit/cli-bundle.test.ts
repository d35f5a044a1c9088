// The bundled CLI (dist/src/cli.bundle.js, what bin/dst runs) says and exits exactly what the
// compiled modules say, and shares the one error class with the modules it leaves separate (the
// engine's errors must keep their exit codes).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as plain from '../../src/cli.js';
import { DstError } from '../../src/util/errors.js';
import { skipOrFail } from '../helpers/tools.js';

type Cli = typeof plain;
const BUNDLE = new URL('../../src/cli.bundle.js', import.meta.url);
const PLAIN = new URL('../../src/cli.js', import.meta.url);

/** The bundle, when `npm run build` made it after the last tsc run (else it would test old code). */
async function bundle(t: TestContext): Promise<Cli | null> {
  let fresh = false;
  try {
    fresh = statSync(fileURLToPath(BUNDLE)).mtimeMs >= statSync(fileURLToPath(PLAIN)).mtimeMs;
  } catch { /* missing */ }
  if (!fresh) return skipOrFail(t, 'dist/src/cli.bundle.js is missing or older than dist/src/cli.js: run npm run build') || null;
  return await import(BUNDLE.href) as Cli;
}

async function runIn(cli: Cli, argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await cli.main(argv, { io: { out: (s) => { out += s; }, err: (s) => { err += s; }, isTTY: false }, env, cwd: '/' });
  return { code, out, err };
}

test('the bundled CLI prints and exits as the compiled modules do', async (t) => {
  const cli = await bundle(t);
  if (!cli) return;
  const dir = await mkdtemp(join(tmpdir(), 'dst-bundle-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const env = { DST_SOCKET: join(dir, 'none.sock') };
  const lines: string[][] = [
    ['--help'], ['--version'], ['node', '--help'], ['node', 'add', '--help'], ['fault-proxy', '--help'],
    ['node', 'add'], ['nde'], ['node', 'add', 'x', '--bogus'], ['node', 'add', 'vol', '--disk', 'x'],
    ['engine', '--log-level=x'], ['status'], ['status', '--json'], ['node', 'list', '--json'],
    ['completion'], ['-n', 'x', '-h'], ['-n', 'x', '-d', '/nonexistent', '-a', '127.0.0.1', '-p', '1'],
  ];
  for (const argv of lines) {
    const want = await runIn(plain, argv, env);
    assert.deepEqual(await runIn(cli, argv, env), want, `dst ${argv.join(' ')}`);
  }
});

test('the bundled CLI gives the separate modules\' errors their exit codes', async (t) => {
  const cli = await bundle(t);
  if (!cli) return;
  // the engine throws the DstError of dist/src/util/errors.js
  assert.equal(cli.exitCodeFor(new DstError('DST_ERR_NO_ENGINE', 'no engine')), 3);
  assert.equal(cli.exitCodeFor(new DstError('DST_ERR_USAGE', 'bad')), 2);
});
