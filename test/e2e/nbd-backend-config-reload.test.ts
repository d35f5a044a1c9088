// An export whose disk is an NBD URI survives an engine restart (issue 17): autosaved with the
// URI as written, reloaded from the file, started again (it was running) and connected to the same
// server, whose size it reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

test('an export with disk = nbd+unix://… is saved as written and reloaded by a restarted engine', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const sock = join(tmpDir(t), 'nbdkit.sock');
  const server = await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, 'memory', '16M'], sock);
  const eng = await startEngine(t, { ownConfig: true });
  await eng.dstJson(['node', 'add', 'vol', '--disk', server.uri, '--listen', '127.0.0.1:0']);
  await eng.dstJson(['node', 'start', 'vol']);
  assert.ok(readFileSync(eng.configFile, 'utf8').includes(`disk = ${JSON.stringify(server.uri)}`), 'the URI is saved as written');

  await eng.restart();
  const back = await eng.waitForState('vol', 'listening');
  assert.equal(back.disk, server.uri);
  assert.equal(back.size, 16 * 1024 * 1024);
  assert.equal(back.backend?.state, 'connected');
  assert.equal(back.backend?.reconnects, 0, 'a fresh backend, not a reconnect');
});
