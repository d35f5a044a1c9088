// cut destroys every current connection on both sides; new connections are still accepted.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FaultProxy } from '../../src/faultproxy/proxy.js';
import { connectCollector, startEchoServer } from '../helpers/net-testkit.js';

test('fault-proxy cut closes both sides of every connection', { timeout: 5000 }, async (t) => {
  const server = await startEchoServer();
  t.after(() => server.close());
  const proxy = new FaultProxy({ listen: '127.0.0.1:0', target: server.address });
  const { port } = await proxy.start();
  t.after(() => proxy.close());

  const a = await connectCollector(port);
  const b = await connectCollector(port);
  a.socket.write('a');
  b.socket.write('b');
  await a.waitBytes(1);
  await b.waitBytes(1);
  const conns = await server.waitConnections(2);
  assert.equal(proxy.status().connections, 2);

  assert.equal(proxy.cut(), 2);
  // Both sides of both connections see the connection end (these sockets allow half-open, so a FIN
  // shows as 'end').
  await Promise.all([a.waitEnded(), b.waitEnded(), conns[0]!.waitEnded(), conns[1]!.waitEnded()]);
  assert.equal(proxy.status().connections, 0);
  a.socket.destroy();
  b.socket.destroy();

  // cut rst resets instead.
  const r = await connectCollector(port);
  r.socket.write('r');
  await r.waitBytes(1);
  const rs = (await server.waitConnections(3))[2]!;
  assert.equal(proxy.cut({ reset: true }), 1);
  await Promise.all([r.waitClosed(), rs.waitClosed()]);
  assert.equal((r.error as NodeJS.ErrnoException | null)?.code, 'ECONNRESET');

  const c = await connectCollector(port);
  c.socket.write('again');
  assert.equal((await c.waitBytes(5)).toString(), 'again');
  c.socket.destroy();
});
