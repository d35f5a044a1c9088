// pass (the default) forwards every byte exactly, both ways, and passes each side's FIN on.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { FaultProxy } from '../../src/faultproxy/proxy.js';
import { connectCollector, startSinkServer } from '../helpers/net-testkit.js';

test('fault-proxy pass forwards bytes exactly both ways', { timeout: 5000 }, async (t) => {
  const server = await startSinkServer();
  t.after(() => server.close());
  const proxy = new FaultProxy({ listen: '127.0.0.1:0', target: server.address });
  const addr = await proxy.start();
  t.after(() => proxy.close());
  assert.ok(addr.port > 0);
  assert.equal(proxy.addressText, `127.0.0.1:${addr.port}`);

  const client = await connectCollector(addr.port);
  const up = randomBytes(1 << 20);
  client.socket.write(up.subarray(0, 1000));
  client.socket.write(up.subarray(1000));
  const [sc] = await server.waitConnections(1);
  const gotUp = await sc!.waitBytes(up.length);
  assert.equal(gotUp.length, up.length);
  assert.ok(gotUp.equals(up), 'server received exactly what the client sent');

  const down = randomBytes(300_000);
  sc!.socket.write(down);
  const gotDown = await client.waitBytes(down.length);
  assert.equal(gotDown.length, down.length);
  assert.ok(gotDown.equals(down), 'client received exactly what the server sent');

  // FIN from the client reaches the server; the server's FIN then reaches the client.
  client.socket.end();
  await sc!.waitEnded();
  sc!.socket.end();
  await client.waitEnded();

  const s = proxy.status();
  assert.equal(s.mode, 'pass');
  assert.equal(s.bytesUp, up.length);
  assert.equal(s.bytesDown, down.length);
  assert.equal(s.corrupted, 0);
  assert.equal(s.accepted, 1);
});
