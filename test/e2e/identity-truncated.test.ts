// An export identity file truncated while the engine is stopped (a torn write, a bad disk) makes
// the export refuse to start, naming the file — never a silently new identity, which would send
// every remote node of the export to `failed`. The operator's intent (autostart) is kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';

test('a truncated identity file refuses the export start, naming it', async (t) => {
  const eng = await startEngine(t, { ownConfig: true });
  const disk = join(eng.dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(1024 * 1024));
  await eng.dstJson(['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0']);
  await eng.dstJson(['node', 'start', 'vol']);
  const idFile = join(eng.stateDir, 'exports', 'vol.id');
  assert.match(readFileSync(idFile, 'utf8'), /"uuid"/, 'the identity was stored before serving');

  await eng.kill('SIGTERM');
  truncateSync(idFile, 10);
  await eng.restart();
  const failed = await eng.waitForState('vol', 'failed', 10_000);
  assert.ok(failed.reason?.includes(idFile), `the reason names the file: ${failed.reason}`);
  const r = await eng.dstFail(['node', 'start', 'vol'], 1);
  assert.equal(r.error?.code, 'DST_ERR_IDENTITY');
  assert.ok(r.error?.message.includes(idFile), r.error?.message);
  assert.equal(statSync(idFile).size, 10, 'no new identity was written over it');
  assert.match(readFileSync(eng.configFile, 'utf8'), /autostart = true/, 'a start that fails at boot keeps the intent');
});
