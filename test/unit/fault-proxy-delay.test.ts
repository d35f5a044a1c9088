// delay MS holds every chunk at least MS in each direction, and keeps the order.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { proxiedSink } from '../helpers/proxied-sink.js';
import { connectCollector, sleep } from '../helpers/net-testkit.js';

test('fault-proxy delay adds at least MS per direction, order preserved', { timeout: 5000 }, async (t) => {
  const { server, proxy, port } = await proxiedSink(t);
  const client = await connectCollector(port);
  client.socket.write('x');
  const [sc] = await server.waitConnections(1);
  await sc!.waitBytes(1);

  const MS = 150;
  proxy.delay(MS);
  assert.equal(proxy.status().mode, 'delay');
  assert.equal(proxy.status().delayMs, MS);

  let t0 = performance.now();
  client.socket.write('a');
  await sleep(20);
  client.socket.write('b');
  await sleep(20);
  client.socket.write('c');
  await sc!.waitBytes(2, 2000);
  const firstUp = performance.now() - t0;
  const up = await sc!.waitBytes(4, 2000);
  assert.ok(firstUp >= MS, `up chunk arrived after ${firstUp.toFixed(1)} ms, expected ≥ ${MS}`);
  assert.equal(up.toString(), 'xabc');

  t0 = performance.now();
  sc!.socket.write('down');
  const down = await client.waitBytes(4, 2000);
  const dt = performance.now() - t0;
  assert.ok(dt >= MS, `down chunk arrived after ${dt.toFixed(1)} ms, expected ≥ ${MS}`);
  assert.equal(down.toString(), 'down');

  // Back to pass: no delay any more.
  proxy.pass();
  t0 = performance.now();
  client.socket.write('d');
  await sc!.waitBytes(5, 2000);
  assert.ok(performance.now() - t0 < MS, 'pass forwards without the delay');
});
