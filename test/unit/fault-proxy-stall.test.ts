// stall holds every byte (and FIN) without closing; pass releases them in order.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { proxiedSink } from '../helpers/proxied-sink.js';
import { connectCollector, sleep, waitUntil } from '../helpers/net-testkit.js';

test('fault-proxy stall holds bytes; pass releases them in order', { timeout: 5000 }, async (t) => {
  const { server, proxy, port } = await proxiedSink(t);
  const client = await connectCollector(port);
  const [sc] = await server.waitConnections(1);

  proxy.stall();
  client.socket.write('first,');
  await sleep(10);
  client.socket.write('second,');
  await sleep(10);
  client.socket.write('third');
  client.socket.end();
  sc!.socket.write('reply-1,');
  await sleep(10);
  sc!.socket.write('reply-2');

  await waitUntil(() => proxy.status().heldUp === 18 && proxy.status().heldDown === 15, 2000, 'bytes held');
  await sleep(150);
  assert.equal(sc!.length, 0, 'nothing reached the server while stalled');
  assert.equal(client.length, 0, 'nothing reached the client while stalled');
  assert.equal(sc!.ended, false, 'the FIN is held too');
  assert.equal(client.closed || sc!.closed, false, 'stall does not close');
  assert.equal(proxy.status().mode, 'stall');
  assert.equal(proxy.status().connections, 1);

  proxy.pass();
  assert.equal((await sc!.waitBytes(18)).toString(), 'first,second,third');
  await sc!.waitEnded();
  assert.equal((await client.waitBytes(15)).toString(), 'reply-1,reply-2');
  assert.equal(proxy.status().heldUp, 0);
  assert.equal(proxy.status().heldDown, 0);
});
