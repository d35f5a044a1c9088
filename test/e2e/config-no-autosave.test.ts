// `dst engine --no-autosave` and `[engine] autosave = false` keep the explicit-save behaviour:
// changes stay out of the file (status says they are unsaved) until `dst config save`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine, type Engine } from '../helpers/engine.js';
import type { StatusShow } from '../../src/engine/types.js';

async function explicitSaveOnly(eng: Engine, conf: string): Promise<void> {
  const before = readFileSync(conf, 'utf8');
  await eng.dstJson(['node', 'add', 'r', '--remote', '127.0.0.1:9']);
  assert.equal(readFileSync(conf, 'utf8'), before, 'node add did not touch the file');
  const st = await eng.dstJson<StatusShow>(['status']);
  assert.deepEqual(st.config, { file: conf, autosave: false, unsaved: true });
  await eng.dstJson(['config', 'save']);
  assert.match(readFileSync(conf, 'utf8'), /\[node "r"\]/);
  assert.equal((await eng.dstJson<StatusShow>(['status'])).config.unsaved, false);
}

test('--no-autosave: only config save writes the file', async (t) => {
  const eng = await startEngine(t, { ownConfig: true, args: ['--no-autosave'] });
  await explicitSaveOnly(eng, join(eng.dir, 'dst.conf'));
});

test('[engine] autosave = false: only config save writes the file, and the key is kept', async (t) => {
  const eng0 = await startEngine(t, { ownConfig: true });
  const conf = eng0.configFile;
  await eng0.kill('SIGTERM');
  writeFileSync(conf, '[engine]\nautosave = false\n');
  const eng = await eng0.restart();
  await explicitSaveOnly(eng, conf);
  assert.match(readFileSync(conf, 'utf8'), /autosave = false/, '[engine] keys are written back as the file had them');
  assert.doesNotMatch(readFileSync(conf, 'utf8'), /log-level/, 'the command line --log-level is not made permanent');
});
