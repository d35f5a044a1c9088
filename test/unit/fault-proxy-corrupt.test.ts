// corrupt offset N flips exactly one bit of byte N of each connection's stream in DIR;
// corrupt every N flips one bit per N bytes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { proxiedSink } from '../helpers/proxied-sink.js';
import { connectCollector, sleep } from '../helpers/net-testkit.js';

function diffBits(a: Buffer, b: Buffer): { offset: number; xor: number }[] {
  assert.equal(a.length, b.length);
  const out: { offset: number; xor: number }[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.push({ offset: i, xor: a[i]! ^ b[i]! });
  return out;
}

test('fault-proxy corrupt offset flips exactly that bit, per connection', { timeout: 5000 }, async (t) => {
  const { server, proxy, port } = await proxiedSink(t);
  proxy.corruptAt(10, 'up');

  const sent = Buffer.from('0123456789abcdefghijklmnopqrstuv');
  for (const n of [1, 2]) {
    const client = await connectCollector(port);
    const conns = await server.waitConnections(n);
    const sc = conns[n - 1]!;
    // Two chunks, so the offset is counted across chunk boundaries.
    client.socket.write(sent.subarray(0, 7));
    await sc.waitBytes(7);
    await sleep(5);
    client.socket.write(sent.subarray(7));
    const got = await sc.waitBytes(sent.length);
    assert.deepEqual(diffBits(sent, got), [{ offset: 10, xor: 0x01 }]);
    // The other direction is untouched.
    sc.socket.write(sent);
    assert.ok((await client.waitBytes(sent.length)).equals(sent));
    client.socket.destroy();
  }
  assert.equal(proxy.status().corrupted, 2);
  assert.deepEqual(proxy.status().corrupt, { kind: 'offset', offset: 10, dir: 'up', bit: 0 });
});

test('fault-proxy corrupt every N flips one bit per N bytes', { timeout: 5000 }, async (t) => {
  const { server, proxy, port } = await proxiedSink(t);
  proxy.corruptEvery(100, 'down');

  const client = await connectCollector(port);
  const [sc] = await server.waitConnections(1);
  const sent = Buffer.alloc(1000, 0x55);
  sc!.socket.write(sent.subarray(0, 250));
  await client.waitBytes(250);
  sc!.socket.write(sent.subarray(250));
  const got = await client.waitBytes(sent.length);
  const diffs = diffBits(sent, got);
  assert.deepEqual(diffs.map((d) => d.offset), [99, 199, 299, 399, 499, 599, 699, 799, 899, 999]);
  assert.ok(diffs.every((d) => d.xor === 0x01), 'exactly one bit per corrupted byte');
  assert.equal(proxy.status().corrupted, 10);

  // Up is not corrupted.
  client.socket.write(sent);
  assert.ok((await sc!.waitBytes(sent.length)).equals(sent));
});
