// Bad NBD URIs at `node add` (issue 17): an unreachable server, an unknown export name (the
// server's NBD_REP_ERR_UNKNOWN) and --create with a URI are refused with errors naming the URI;
// nothing is added.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startEngine } from '../helpers/engine.js';
import { freePort } from '../helpers/cluster.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

test('node add --disk URI: unreachable, unknown export, --create → clear errors naming the URI', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const e = await startEngine(t);
  const add = (disk: string, ...more: string[]): string[] => ['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0', ...more];

  const closed = `nbd://127.0.0.1:${await freePort()}/img`;
  const unreachable = await e.dstFail(add(closed));
  assert.equal(unreachable.code, 1);
  assert.equal(unreachable.error?.errno, 'ECONNREFUSED');
  assert.ok(unreachable.error?.message.includes(closed), unreachable.error?.message);

  const missing = `nbd+unix:///vol?socket=${join(tmpDir(t), 'none.sock')}`;
  const noSocket = await e.dstFail(add(missing));
  assert.equal(noSocket.error?.errno, 'ENOENT');
  assert.ok(noSocket.error?.message.includes(missing), noSocket.error?.message);

  // nbdkit with an export-name filter that only knows "good"
  const sock = join(tmpDir(t), 'k.sock');
  const server = await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, '--filter=exportname', 'memory', '1M', 'exportname-strict=true', 'exportname=good'], sock, 'good');
  const unknown = server.uri.replace('///good', '///bad');
  const refused = await e.dstFail(add(unknown));
  assert.equal(refused.error?.code, 'DST_ERR_NOT_FOUND');
  assert.ok(refused.error?.message.includes(unknown), refused.error?.message);
  assert.match(refused.error?.message ?? '', /export "bad" is unknown \(NBD_REP_ERR_UNKNOWN/);

  const create = await e.dstFail(add(server.uri, '--create', '1G'), 2);
  assert.equal(create.error?.code, 'DST_ERR_USAGE');
  assert.ok(create.error?.message.includes(server.uri), create.error?.message);

  assert.deepEqual(await e.dstJson(['node', 'list']), [], 'nothing was added');
  const good = await e.dstJson<{ disk: string; size: number }>(add(server.uri));
  assert.equal(good.disk, server.uri);
  assert.equal(good.size, 1024 * 1024);
});
