// The metrics families from node shows and request metrics: every family present even with no
// node, states as 0/1 gauges, leg series (bytes, requests, resends, replays, in flight) in dst_leg_*
// families, errors by op and errno.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectFamilies, type EngineSample } from '../../src/engine/metrics/collect.js';
import { RequestMetrics } from '../../src/engine/metrics/request-metrics.js';
import { exposition } from '../../src/engine/metrics/exposition.js';
import { FakeClock } from '../../src/util/clock.js';
import { remoteNode } from '../helpers/cli-harness.js';
import { emptyLatencyShow } from '../../src/engine/metrics/request-metrics.js';
import { emptyStats } from '../../src/engine/types.js';
import { sample } from '../helpers/metrics.js';

const engine: EngineSample = { rssBytes: 1 << 26, loopDelayP99: 0.001, loopDelayMax: 0.002, cryptoBusySeconds: 1.5, payloadPoolFreeBytes: 4096 };

test('collect: families always present; node and leg series; errors by op and errno', () => {
  const empty = collectFamilies([], engine);
  assert.ok(empty.length > 20);
  assert.ok(empty.every((f) => f.help.length > 0));
  const clock = new FakeClock();
  const req = new RequestMetrics(clock);
  const leg = new RequestMetrics(clock);
  req.done('write', clock.now(), null, 4096);
  req.done('write-zeroes', clock.now(), 'EIO', 4096);
  leg.done('read', clock.now(), null, 512);
  const legShow = { index: 0, remote: '192.0.2.1:10825', export: null, state: 'resyncing' as const, reason: null, size: 1 << 20, identity: null,
    outOfSyncBytes: 65536, generation: null, resync: null, latency: emptyLatencyShow(),
    stats: { reads: 1, writes: 0, bytesRead: 512, bytesWritten: 0, resyncedBytes: 0, comparedBytes: 0, failed: 0, reconnects: 2, resends: 4, replayed: 1, inflight: 5 } };
  const show = remoteNode({ name: 'm', state: 'ready', layout: 'mirror', legs: [legShow], stats: { ...emptyStats(), bytesWritten: 4096 } });
  const text = exposition(collectFamilies([{ show, metrics: { requests: req, legs: [{ index: 0, metrics: leg }], nbdConnections: 3 } }], engine));
  assert.equal(sample(text, 'dst_node_state', { node: 'm', state: 'ready' }), 1);
  assert.equal(sample(text, 'dst_node_state', { node: 'm', state: 'failed' }), 0);
  assert.equal(sample(text, 'dst_write_bytes_total', { node: 'm' }), 4096);
  assert.equal(sample(text, 'dst_requests_total', { node: 'm', op: 'trim' }), 1, 'write zeroes count as trim');
  assert.equal(sample(text, 'dst_request_errors_total', { node: 'm', op: 'trim', errno: 'EIO' }), 1);
  assert.equal(sample(text, 'dst_nbd_connections', { node: 'm' }), 3);
  assert.equal(sample(text, 'dst_leg_state', { node: 'm', leg: '0', state: 'resyncing' }), 1);
  assert.equal(sample(text, 'dst_resync_remaining_bytes', { node: 'm', leg: '0' }), 65536);
  assert.equal(sample(text, 'dst_leg_requests_total', { node: 'm', leg: '0', op: 'read' }), 1);
  assert.equal(sample(text, 'dst_leg_reconnects_total', { node: 'm', leg: '0' }), 2);
  assert.equal(sample(text, 'dst_leg_resends_total', { node: 'm', leg: '0' }), 4);
  assert.equal(sample(text, 'dst_leg_replays_total', { node: 'm', leg: '0' }), 1);
  assert.equal(sample(text, 'dst_leg_inflight_requests', { node: 'm', leg: '0' }), 5);
  assert.equal(sample(text, 'dst_read_bytes_total', { node: 'm', leg: '0' }), null, 'leg bytes are not in the node family');
  assert.equal(sample(text, 'dst_crypto_pool_busy_seconds_total', {}), 1.5);
});
