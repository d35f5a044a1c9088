// A crash in the middle of a save (the engine SIGKILLs itself after the temporary file is written
// and fsync'd, before the rename: DST_TEST_SAVE_CRASH=before-rename) leaves the old file, whole;
// the engine restarted on it runs the old configuration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { startEngine } from '../helpers/engine.js';
import { parseConfigText } from '../../src/engine/config.js';
import type { NodeShow } from '../../src/engine/types.js';
import { tmpDir } from '../helpers/tmp.js';
import { join } from 'node:path';

test('killed between the temp write and the rename: the old file stays valid', async (t) => {
  const dir = tmpDir(t, 'dst-crash-');
  const conf = join(dir, 'dst.conf');
  const old = '; hand-written\n[node "old"]\nrole = remote\nremote = "127.0.0.1:9"\n';
  writeFileSync(conf, old);
  const eng = await startEngine(t, { config: conf, env: { DST_TEST_SAVE_CRASH: 'before-rename' } });
  const r = await eng.dst(['node', 'add', 'new', '--remote', '127.0.0.1:8']);
  assert.notEqual(r.code, 0, 'the engine died before answering');
  const exit = await eng.kill('SIGKILL');
  assert.equal(exit?.signal, 'SIGKILL', 'the engine was killed by the hook');

  assert.equal(readFileSync(conf, 'utf8'), old, 'the old file, byte for byte');
  assert.deepEqual(parseConfigText(readFileSync(conf, 'utf8'), conf).nodes.map((n) => n.name), ['old']);
  const tmp = readdirSync(dir).filter((f) => f.endsWith('.tmp'));
  assert.equal(tmp.length, 1, `the crash happened after the temporary file was written (${readdirSync(dir).join(', ')})`);
  assert.match(readFileSync(join(dir, tmp[0]!), 'utf8'), /\[node "new"\]/, 'the new configuration was in the temporary file');

  await eng.restart({ env: { DST_TEST_SAVE_CRASH: undefined } });
  assert.deepEqual((await eng.dstJson<NodeShow[]>(['node', 'list'])).map((n) => n.name), ['old']);
  await eng.dstJson(['node', 'add', 'new', '--remote', '127.0.0.1:8']);
  assert.deepEqual(parseConfigText(readFileSync(conf, 'utf8'), conf).nodes.map((n) => n.name), ['old', 'new']);
});
