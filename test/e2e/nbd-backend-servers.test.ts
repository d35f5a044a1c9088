// An export in front of `nbdkit file` (over TCP, nbd://) and `qemu-nbd` on a qcow2 image (issue 17):
// verified I/O through a remote node lands in the server's disk; sizes and flags as the server says;
// a read-only server makes a read-only export.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startPair } from '../helpers/cluster.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { NbdClient, NbdError } from '../helpers/nbd-client.js';
import { blocksContent, checkBlocks } from '../helpers/blocks.js';
import { requireTool, runOk } from '../helpers/tools.js';
import { sparseFile, tmpDir } from '../helpers/tmp.js';

async function verifiedIo(socket: string, at: number): Promise<Buffer> {
  const c = await NbdClient.connect(socket);
  try {
    const data = blocksContent(at, 3, 64);
    await c.write(at * 4096, data, true);
    assert.deepEqual(checkBlocks(await c.read(at * 4096, data.length), at), new Array(64).fill(3));
    await c.flush();
    return data;
  } finally {
    c.close();
  }
}

test('nbdkit file over TCP (nbd://127.0.0.1:PORT): size, flags, writes land in the file', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const dir = tmpDir(t);
  const file = sparseFile(join(dir, 'disk.img'), 24 * 1024 * 1024);
  const port = await freePort();
  const { uri } = await startNbdServer(t, 'nbdkit', ['-f', '-i', '127.0.0.1', '-p', String(port), 'file', file], port);
  const pair = await startPair(t, { disk: uri });
  const exp = await pair.exp.show(pair.exportName);
  assert.equal(exp.size, 24 * 1024 * 1024);
  assert.equal(exp.disk, uri);
  assert.match(uri, /^nbd:\/\/127\.0\.0\.1:\d+\/$/);
  assert.match(exp.backend!.flags, /send_fua/);
  const data = await verifiedIo(pair.socket, 100);
  assert.ok(readFileSync(file).subarray(100 * 4096, 100 * 4096 + data.length).equals(data), 'the data is in nbdkit\'s file');
});

test('qemu-nbd on a qcow2 image: size, verified I/O; qemu-nbd --read-only → a read-only export', async (t) => {
  if (!requireTool(t, 'qemu-nbd', 'qemu-utils') || !requireTool(t, 'qemu-img', 'qemu-utils')) return;
  const dir = tmpDir(t);
  const img = join(dir, 'disk.qcow2');
  await runOk('qemu-img', ['create', '-f', 'qcow2', img, '32M']);
  const sock = join(dir, 'qemu.sock');
  const server = await startNbdServer(t, 'qemu-nbd', ['--format=qcow2', '--export-name=img', '--persistent', '--shared=8', '--socket', sock, img], sock, 'img');
  const pair = await startPair(t, { disk: server.uri });
  assert.equal((await pair.exp.show(pair.exportName)).size, 32 * 1024 * 1024);
  assert.equal((await pair.show()).size, 32 * 1024 * 1024);
  const data = await verifiedIo(pair.socket, 7);
  await server.kill();

  const roSock = join(dir, 'ro.sock');
  const ro = await startNbdServer(t, 'qemu-nbd', ['--format=qcow2', '--export-name=img', '--read-only', '--persistent', '--shared=8', '--socket', roSock, img], roSock, 'img');
  const roPair = await startPair(t, { disk: ro.uri, exportName: 'ro', remoteName: 'ro' });
  assert.match((await roPair.exp.show('ro')).backend!.flags, /read_only/);
  assert.equal((await roPair.show()).permissions, 'r', 'the remote node is granted read only');
  const c = await NbdClient.connect(roPair.socket);
  t.after(() => c.close());
  assert.ok((await c.read(7 * 4096, data.length)).equals(data), 'what was written through qemu-nbd before');
  const refused = await c.write(0, Buffer.alloc(4096)).then(() => null, (err: unknown) => err);
  assert.ok(refused instanceof NbdError, `a write to a read-only export fails: ${String(refused)}`);
});
