// --capture records both directions (as received) in the documented framing; readCapture reads it back.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isDstError } from '../../src/util/errors.js';
import { captureBytes, encodeCaptureRecord, readCapture } from '../../src/faultproxy/capture.js';
import { proxiedSink } from '../helpers/proxied-sink.js';
import { connectCollector } from '../helpers/net-testkit.js';

test('fault-proxy capture records both directions and reads back', { timeout: 5000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dst-fp-cap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cap = join(dir, 'out.cap');

  const { server, proxy, port } = await proxiedSink(t, { capture: cap });
  assert.equal(proxy.status().capture, cap);

  const client = await connectCollector(port);
  const [sc] = await server.waitConnections(1);
  client.socket.write('secret plaintext going up');
  await sc!.waitBytes(25);
  sc!.socket.write('answer coming down');
  await client.waitBytes(18);
  const client2 = await connectCollector(port);
  client2.socket.write('second connection');
  await (await server.waitConnections(2))[1]!.waitBytes(17);
  await proxy.close();

  const raw = readFileSync(cap);
  assert.equal(raw.subarray(0, 6).toString(), 'DSTCAP');
  assert.ok(raw.includes('secret plaintext going up'), 'tests can search the capture for plaintext');
  const recs = readCapture(cap);
  assert.ok(recs.every((r) => !r.injected));
  assert.equal(captureBytes(recs, { direction: 'up', connection: 1 }).toString(), 'secret plaintext going up');
  assert.equal(captureBytes(recs, { direction: 'down', connection: 1 }).toString(), 'answer coming down');
  assert.equal(captureBytes(recs, { connection: 2 }).toString(), 'second connection');
  assert.deepEqual([...new Set(recs.map((r) => r.connection))].sort(), [1, 2]);

  // The framing is exactly as documented: header, then {dir u8, conn u32, len u32, bytes}.
  const first = recs[0]!;
  assert.ok(raw.subarray(8, 8 + 9 + first.data.length)
    .equals(encodeCaptureRecord(first.direction, first.connection, first.data)));
  assert.equal(raw.readUInt8(8), 0, 'up = 0');
  assert.equal(raw.readUInt32BE(9), 1, 'connection id');
  assert.equal(raw.readUInt32BE(13), first.data.length, 'length');

  // A truncated file is a clear error, not garbage.
  const bad = join(dir, 'bad.cap');
  writeFileSync(bad, raw.subarray(0, raw.length - 3));
  assert.throws(() => readCapture(bad), (e) => isDstError(e, 'DST_ERR_BAD_FRAME'));
});
