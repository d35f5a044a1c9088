// An export counts its requests per op as it answers them (ExportStats.metrics): backend calls with
// their latency from arrival to answer, refusals and replay-cache answers too, errors by errno,
// bytes of the reads and writes that succeeded; the metrics endpoint shows them under the node's
// name in the request families (no NBD connection gauge: an export has no NBD clients).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/util/clock.js';
import { Op } from '../../src/protocol/wire.js';
import { errnoNumber } from '../../src/util/errors.js';
import { ExportStats } from '../../src/engine/export/stats.js';
import { collectFamilies, type EngineSample } from '../../src/engine/metrics/collect.js';
import { exposition } from '../../src/engine/metrics/exposition.js';
import { exportNode } from '../helpers/cli-harness.js';
import { sample } from '../helpers/metrics.js';

const engine: EngineSample = { rssBytes: 1, loopDelayP99: 0, loopDelayMax: 0, cryptoBusySeconds: 0, payloadPoolFreeBytes: 0 };

test('export: requests, errors, latency and bytes per op, in node show and the request families', () => {
  const clock = new FakeClock();
  const s = new ExportStats(clock, () => undefined);
  for (let i = 0; i < 3; i++) {
    const w = s.beginCall();
    clock.advance(4);
    s.endCall(w, Op.WRITE, 65536, 0);
  }
  const r = s.beginCall();
  clock.advance(2);
  s.endCall(r, Op.READ, 4096, 0);
  const bad = s.beginCall();
  s.endCall(bad, Op.READ, 0, errnoNumber('EIO'));
  s.endCall(s.beginCall(), Op.WRITE_ZEROES, 0, 0);
  s.endCall(s.beginCall(), Op.BLOCK_STATUS, 0, 0); // a query: not an I/O op
  s.answered(Op.WRITE, errnoNumber('EPERM')); // refused before the backend

  const show = s.metrics.show();
  assert.equal(show.sinceStart.write.count, 4);
  assert.equal(show.sinceStart.write.maxMs, 4);
  assert.equal(show.sinceStart.read.count, 2);
  assert.equal(show.sinceStart.trim.count, 1, 'WRITE_ZEROES counts as trim');
  assert.equal(s.metrics.bytesWritten, 3 * 65536);
  assert.equal(s.metrics.bytesRead, 4096);
  assert.equal(s.metrics.errors.read.get('EIO'), 1);
  assert.equal(s.metrics.errors.write.get('EPERM'), 1);

  const node = exportNode({ name: 'disk', state: 'listening', stats: s.snapshot(), latency: show });
  const text = exposition(collectFamilies([{ show: node, metrics: { requests: s.metrics, legs: [], nbdConnections: null } }], engine));
  assert.equal(sample(text, 'dst_requests_total', { node: 'disk', op: 'write' }), 4);
  assert.equal(sample(text, 'dst_request_duration_seconds_count', { node: 'disk', op: 'read' }), 2);
  assert.equal(sample(text, 'dst_request_errors_total', { node: 'disk', op: 'read', errno: 'EIO' }), 1);
  assert.equal(sample(text, 'dst_write_bytes_total', { node: 'disk' }), 3 * 65536);
  assert.equal(sample(text, 'dst_nbd_connections', { node: 'disk' }), null, 'an export has no NBD clients');
  const rates = s.metrics.rates();
  assert.ok(rates.writeIops > 0 && rates.readBytesPerSecond > 0, `rates ${JSON.stringify(rates)}`);
});
