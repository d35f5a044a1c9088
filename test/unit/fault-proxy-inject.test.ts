// inject writes a file's bytes into the live connection(s); a capture file replays its recorded chunks.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isDstError } from '../../src/util/errors.js';
import { proxiedSink } from '../helpers/proxied-sink.js';
import { FaultProxy } from '../../src/faultproxy/proxy.js';
import { connectCollector, startSinkServer } from '../helpers/net-testkit.js';

test('fault-proxy inject delivers the file bytes in DIR', { timeout: 5000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dst-fp-inject-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'frame.bin');
  writeFileSync(file, Buffer.from('INJECTED-FRAME\x00\xff', 'latin1'));

  const { server, proxy, port } = await proxiedSink(t);

  await assert.rejects(proxy.inject(file), (e) => isDstError(e, 'DST_ERR_STATE'), 'no live connection');

  const client = await connectCollector(port);
  const [sc] = await server.waitConnections(1);
  client.socket.write('real:');
  await sc!.waitBytes(5);

  assert.deepEqual(await proxy.inject(file), { bytes: 16, connections: 1 });
  assert.ok((await sc!.waitBytes(21)).equals(Buffer.from('real:INJECTED-FRAME\x00\xff', 'latin1')));
  assert.equal(client.length, 0, 'up only');

  await proxy.inject(file, 'down');
  assert.ok((await client.waitBytes(16)).equals(Buffer.from('INJECTED-FRAME\x00\xff', 'latin1')));
  assert.equal(proxy.status().injected, 32);
  assert.equal(proxy.status().bytesUp, 5, 'injected bytes are not counted as received');

  await assert.rejects(proxy.inject(join(dir, 'missing.bin')), (e) => isDstError(e, 'DST_ERR_NOT_FOUND'));
});

test('fault-proxy inject of a capture file replays its recorded chunks', { timeout: 5000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dst-fp-replay-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cap = join(dir, 'session.cap');

  const server = await startSinkServer();
  t.after(() => server.close());
  // Record one session.
  const rec = new FaultProxy({ listen: '127.0.0.1:0', target: server.address, capture: cap });
  const r = await rec.start();
  const c1 = await connectCollector(r.port);
  const [s1] = await server.waitConnections(1);
  c1.socket.write('WRITE block 7');
  await s1!.waitBytes(13);
  s1!.socket.write('OK');
  await c1.waitBytes(2);
  await rec.close();

  // Replay its up direction into a fresh connection through another proxy.
  const proxy = new FaultProxy({ listen: '127.0.0.1:0', target: server.address });
  const { port } = await proxy.start();
  t.after(() => proxy.close());
  const c2 = await connectCollector(port);
  const conns = await server.waitConnections(2);
  const s2 = conns[1]!;
  assert.deepEqual(await proxy.inject(cap, 'up'), { bytes: 13, connections: 1 });
  assert.equal((await s2.waitBytes(13)).toString(), 'WRITE block 7');
  assert.equal(c2.length, 0);
  c2.socket.destroy();
});
