// While stalled, a pipe holding more than maxHeldBytes pauses its source instead of growing.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { FaultProxy } from '../../src/faultproxy/proxy.js';
import { connectCollector, sleep, startSinkServer, waitUntil } from '../helpers/net-testkit.js';

test('fault-proxy stall holds a bounded amount, then releases everything in order', { timeout: 5000 }, async (t) => {
  const server = await startSinkServer();
  t.after(() => server.close());
  const MAX = 64 * 1024;
  const proxy = new FaultProxy({ listen: '127.0.0.1:0', target: server.address, maxHeldBytes: MAX });
  const { port } = await proxy.start();
  t.after(() => proxy.close());
  const client = await connectCollector(port);
  const [sc] = await server.waitConnections(1);

  proxy.stall();
  const data = randomBytes(8 * 1024 * 1024);
  client.socket.write(data);
  await waitUntil(() => proxy.status().heldUp >= MAX, 2000, 'the hold limit');
  await sleep(200);
  const held = proxy.status().heldUp;
  assert.ok(held < MAX + 2 * 65536, `held ${held} bytes, bound ${MAX} (+ at most the chunks in flight)`);
  assert.ok(client.socket.writableLength > 0, 'the client is back-pressured');
  assert.equal(sc!.length, 0);

  proxy.pass();
  const got = await sc!.waitBytes(data.length, 4000);
  assert.ok(got.equals(data), 'all bytes arrive, in order');
});
