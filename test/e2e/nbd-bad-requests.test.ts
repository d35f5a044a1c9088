// Bad NBD requests to the remote node's endpoint: errors with the connection kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { NbdClient, NbdError, NBD_CMD } from '../helpers/nbd-client.js';

const EINVAL = 22, ENOSPC = 28;

test('out-of-range, zero-length, unknown flags and unknown commands: errors, connection kept', async (t) => {
  const size = 4 * 1024 * 1024;
  const pair = await startPair(t, { size });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  assert.equal(c.size, size);
  const errnoOf = (p: Promise<unknown>): Promise<number> => p.then(() => 0, (e) => (e instanceof NbdError ? e.errno : -1));
  assert.equal(await errnoOf(c.read(size - 512, 1024)), EINVAL);
  assert.equal(await errnoOf(c.write(size - 512, Buffer.alloc(1024))), ENOSPC);
  assert.equal(await errnoOf(c.read(0, 0)), EINVAL);
  assert.equal(await errnoOf(c.raw(NBD_CMD.READ, 0, 512, null, 0x40)), EINVAL);
  assert.equal(await errnoOf(c.raw(42, 0, 512, null, 0)), EINVAL);
  assert.equal(await errnoOf(c.raw(NBD_CMD.WRITE, 0, 512, Buffer.alloc(512, 3), 0x80)), EINVAL);
  await c.write(0, Buffer.alloc(512, 5));
  assert.deepEqual(await c.read(0, 512), Buffer.alloc(512, 5));
});

test('a request above max-request is split and answered once with the right data', async (t) => {
  const pair = await startPair(t, { size: 16 * 1024 * 1024, remotePolicy: ['--max-request', '64K'] });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  const data = Buffer.alloc(3 * 1024 * 1024 + 4096);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
  await c.write(8192, data);
  assert.ok((await c.read(8192, data.length)).equals(data));
  const show = await pair.show();
  assert.ok(show.stats.completed >= 2 * Math.ceil(data.length / 65536), 'split into max-request transactions');
});
