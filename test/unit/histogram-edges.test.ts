// A latency sample exactly on a bucket edge is in the bucket that edge closes, as Prometheus reads
// `le` (≤): the exposition's cumulative bucket at that `le` counts it, the one below does not; a
// sample just above the edge is in the next bucket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUCKETS, LatencyHistogram, edgeMs } from '../../src/engine/metrics/histogram.js';
import { exposition } from '../../src/engine/metrics/exposition.js';
import { sample } from '../helpers/metrics.js';

test('histogram: buckets are (low, high]; the exposed le counts a sample on it', () => {
  for (let b = 1; b < BUCKETS - 1; b++) {
    const on = new LatencyHistogram();
    on.add(edgeMs(b));
    assert.equal(on.counts[b], 1, `a sample of ${edgeMs(b)} ms is in bucket ${b}`);
    assert.equal(on.quantile(0.5), edgeMs(b), 'its quantile is the edge itself');
    const above = new LatencyHistogram();
    above.add(edgeMs(b) * 1.001);
    assert.equal(above.counts[b + 1], 1, `just above ${edgeMs(b)} ms: bucket ${b + 1}`);
  }
  // an exposed edge: 2^10 µs = 1.024 ms (bucket 40)
  const h = new LatencyHistogram();
  h.add(1.024);
  const text = exposition([{ kind: 'histogram', name: 'x_seconds', help: 'x', samples: [{ labels: {}, histogram: h }] }]);
  assert.equal(sample(text, 'x_seconds_bucket', { le: String(edgeMs(40) / 1000) }), 1, `le=1.024 ms holds a 1.024 ms sample:\n${text}`);
  assert.equal(sample(text, 'x_seconds_bucket', { le: String(edgeMs(38) / 1000) }), 0, 'the le below does not');
});
