// With autosave the file stays the operator's: edited by hand while the engine runs, the next
// change is refused with the documented message and nothing in the edited file is overwritten;
// `dst config save --force` then makes the running state win.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import type { NodeShow, StatusShow } from '../../src/engine/types.js';

test('a config file edited behind the engine is not overwritten; config save --force wins', async (t) => {
  const eng = await startEngine(t, { ownConfig: true });
  await eng.dstJson(['node', 'add', 'a', '--remote', '127.0.0.1:9']);
  assert.match(readFileSync(eng.configFile, 'utf8'), /\[node "a"\]/, 'node add was autosaved');

  appendFileSync(eng.configFile, '\n; my note\n[node "hand"]\nrole = remote\nremote = "127.0.0.1:7"\n');
  const edited = readFileSync(eng.configFile, 'utf8');
  const refused = await eng.dstFail(['node', 'add', 'b', '--remote', '127.0.0.1:8'], 1);
  assert.equal(refused.error?.code, 'DST_ERR_CONFIG');
  assert.ok(refused.error?.message.includes(eng.configFile), refused.error?.message);
  assert.match(refused.error!.message, /changed since the engine last loaded or wrote it/);
  assert.match(refused.error!.message, /restart the engine \(the file wins\)/);
  assert.match(refused.error!.message, /dst config save --force \(the running state wins\)/);
  assert.equal(readFileSync(eng.configFile, 'utf8'), edited, 'the edited file is untouched');
  assert.deepEqual((await eng.dstJson<NodeShow[]>(['node', 'list'])).map((n) => n.name), ['a'], 'the refused node was not added');

  const plain = await eng.dstFail(['config', 'save'], 1);
  assert.match(plain.error!.message, /--force/, 'a plain config save is refused too');
  await eng.dstJson(['config', 'save', '--force']);
  const now = readFileSync(eng.configFile, 'utf8');
  assert.ok(!now.includes('my note') && !now.includes('"hand"'), 'the running state won');
  await eng.dstJson(['node', 'add', 'b', '--remote', '127.0.0.1:8']);
  assert.match(readFileSync(eng.configFile, 'utf8'), /\[node "b"\]/, 'changes are saved again');
  const st = await eng.dstJson<StatusShow>(['status']);
  assert.deepEqual(st.config, { file: join(eng.dir, 'dst.conf'), autosave: true, unsaved: false });
});
