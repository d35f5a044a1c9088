// An export in front of `nbdkit file` (issue 17): extents and zeroes pass through — `nbdinfo --map`
// through the remote node equals `nbdinfo --map` of the server itself, before and after a
// WRITE_ZEROES sent through dst punches a hole in the server's file. And in front of `qemu-nbd` on
// a qcow2 image with preallocated metadata, whose unwritten clusters are allocated zeroes (flags
// 2, not a hole): the flags reach the NBD client as the server gave them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { M, requirePunchHole, thinFile } from '../helpers/thin.js';
import { blocksContent } from '../helpers/blocks.js';
import { requireTools, runOk } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

async function map(socket: string): Promise<string> {
  return (await runOk('nbdinfo', ['--map', `nbd+unix:///?socket=${socket}`], { timeoutMs: 30_000 })).stdout;
}

test('an export in front of nbdkit file: nbdinfo --map through dst equals the server\'s, zeroes included', async (t) => {
  if (!requireTools(t, [['nbdkit', 'nbdkit'], ['nbdinfo', 'libnbd-bin']])) return;
  if (!await requirePunchHole(t)) return;
  const file = thinFile(t, 64 * M, [4 * M, 20 * M, 50 * M], M);
  const sock = join(tmpDir(t), 'nbdkit.sock');
  const server = await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, 'file', file], sock);
  const pair = await startPair(t, { disk: server.uri });

  const direct = await map(sock);
  assert.match(direct, /4194304\s+1048576\s+0\s+data/, direct);
  assert.equal(await map(pair.socket), direct);

  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  await c.writeZeroes(20 * M, M);
  await c.flush();
  const after = await map(sock);
  assert.doesNotMatch(after, /20971520\s+1048576\s+0\s+data/, 'the zeroed range is no longer data at the server');
  assert.equal(await map(pair.socket), after);
});

test('an export in front of qemu-nbd on a preallocated qcow2: allocated zeroes (flags 2) pass through as they are', async (t) => {
  if (!requireTools(t, [['qemu-nbd', 'qemu-utils'], ['qemu-img', 'qemu-utils'], ['nbdinfo', 'libnbd-bin']])) return;
  const dir = tmpDir(t);
  const img = join(dir, 'disk.qcow2');
  await runOk('qemu-img', ['create', '-f', 'qcow2', '-o', 'preallocation=metadata', img, '32M']);
  const sock = join(dir, 'qemu.sock');
  const server = await startNbdServer(t, 'qemu-nbd', ['--format=qcow2', '--persistent', '--shared=8', '--socket', sock, img], sock);
  const pair = await startPair(t, { disk: server.uri });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  await c.write(8 * M, blocksContent(8 * M / 4096, 1, M / 4096));
  await c.flush();

  const direct = await map(sock);
  assert.match(direct, /\s2\s+zero/, `the server reports allocated zeroes: ${direct}`);
  assert.match(direct, /8388608\s+1048576\s+0\s+data/, direct);
  assert.equal(await map(pair.socket), direct, 'the map through dst equals the server\'s');
});
