// An export in front of `nbdkit memory` (issue 17): verified I/O through a remote node, the
// server's size, flags and link state in `node show`, the URI kept as written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blocksContent, checkBlocks } from '../helpers/blocks.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

test('an export in front of nbdkit memory: verified I/O through a remote node; size, flags, link state', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const dir = tmpDir(t);
  const sock = join(dir, 'nbdkit.sock');
  const server = await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, 'memory', '48M'], sock);
  const pair = await startPair(t, { disk: server.uri });

  const exp = await pair.exp.show(pair.exportName);
  assert.equal(exp.disk, server.uri, 'the URI is kept as written');
  assert.equal(exp.size, 48 * 1024 * 1024);
  assert.equal(exp.backend?.state, 'connected');
  assert.equal(exp.backend?.reconnects, 0);
  assert.match(exp.backend?.flags ?? '', /send_flush/);
  assert.equal((await pair.show()).size, 48 * 1024 * 1024, 'the remote node sees the server\'s size');

  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  const data = blocksContent(100, 1, 256); // 1 MiB at block 100
  await c.write(100 * 4096, data);
  await c.flush();
  assert.deepEqual(checkBlocks(await c.read(100 * 4096, data.length), 100), new Array(256).fill(1));
  // many requests at once: more than the backend puts on the wire
  await Promise.all(Array.from({ length: 200 }, (_, i) => c.write((1000 + i) * 4096, blocksContent(1000 + i, 2, 1))));
  const back = await Promise.all(Array.from({ length: 200 }, (_, i) => c.read((1000 + i) * 4096, 4096)));
  back.forEach((b, i) => assert.deepEqual(checkBlocks(b, 1000 + i), [2]));
  // zeroes pass through: the range reads zeroes
  await c.writeZeroes(100 * 4096, 8192);
  assert.ok((await c.read(100 * 4096, 8192)).equals(Buffer.alloc(8192)));
  // so does trim: nbdkit memory drops trimmed pages, which then read zeroes (a dropped TRIM leaves the data)
  assert.match(exp.backend?.flags ?? '', /send_trim/);
  await c.trim(200 * 4096, 16 * 4096);
  assert.ok((await c.read(200 * 4096, 16 * 4096)).equals(Buffer.alloc(16 * 4096)), 'the trimmed range reads zeroes');
  assert.deepEqual(checkBlocks(await c.read(216 * 4096, 40 * 4096), 216), new Array(40).fill(1), 'the rest of the write is untouched');

  const text = (await pair.exp.dst(['node', 'show', pair.exportName])).stdout;
  assert.match(text, /backend\s+nbd connected, reconnects 0/);
  assert.ok(text.includes(`disk       ${server.uri}`), text);
});
