// refuse closes new connections at once (existing ones keep working); accept lets them in again.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FaultProxy } from '../../src/faultproxy/proxy.js';
import { connectCollector, sleep, startEchoServer } from '../helpers/net-testkit.js';

test('fault-proxy refuse and accept', { timeout: 5000 }, async (t) => {
  const server = await startEchoServer();
  t.after(() => server.close());
  const proxy = new FaultProxy({ listen: '127.0.0.1:0', target: server.address });
  const { port } = await proxy.start();
  t.after(() => proxy.close());
  const old = await connectCollector(port);
  await server.waitConnections(1);

  proxy.refuse();
  assert.equal(proxy.status().refusing, true);
  const refused = await connectCollector(port);
  refused.socket.write('hello?');
  await refused.waitEnded();
  assert.equal(refused.length, 0);
  await sleep(50);
  assert.equal(server.conns.length, 1, 'no connection reached the target');
  assert.equal(proxy.status().refused, 1);

  old.socket.write('still here');
  assert.equal((await old.waitBytes(10)).toString(), 'still here');

  proxy.accept();
  assert.equal(proxy.status().refusing, false);
  const fresh = await connectCollector(port);
  fresh.socket.write('welcome');
  assert.equal((await fresh.waitBytes(7)).toString(), 'welcome');
  assert.equal(server.conns.length, 2);
  fresh.socket.destroy();
  old.socket.destroy();
});
