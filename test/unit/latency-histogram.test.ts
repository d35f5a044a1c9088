// The latency histogram (engine/metrics/histogram.ts): quantiles within a bucket (25 %) of the
// truth and never above the exact maximum, sum and count kept, merge adds, reset empties; the
// windowed view keeps the last 10 one-second slots and the total since start, with no timer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LatencyHistogram, WindowedLatency } from '../../src/engine/metrics/histogram.js';

test('histogram: quantiles within a bucket of the truth, exact max and sum, overflow in the last bucket', () => {
  const h = new LatencyHistogram();
  for (let k = 1; k <= 1000; k++) h.add(k / 100); // 0.01 .. 10 ms
  const p99 = h.quantile(0.99);
  assert.ok(p99 >= 9.9 && p99 <= 9.9 * 1.25, `p99 ${p99}`);
  assert.equal(h.maxMs, 10);
  assert.ok(Math.abs(h.sumMs - 5005) < 1e-6);
  assert.equal(h.count, 1000);
  h.add(1e9); // beyond the last bucket: counted there, the max stays exact
  assert.equal(h.quantile(1), 1e9);
  h.reset();
  assert.equal(h.count, 0);
  assert.equal(h.quantile(0.99), 0);
});

test('histogram: any samples → each quantile ≥ the true one, ≤ 1.25 × it (or the max), merge = one histogram of both', () => {
  const sample = fc.double({ min: 0.002, max: 50_000, noNaN: true });
  fc.assert(fc.property(fc.array(sample, { minLength: 1, maxLength: 200 }), fc.array(sample, { maxLength: 50 }), (a, b) => {
    const h = new LatencyHistogram();
    for (const x of a) h.add(x);
    const sorted = [...a].sort((x, y) => x - y);
    for (const q of [0.5, 0.99]) {
      const truth = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
      const got = h.quantile(q);
      assert.ok(got >= truth * (1 - 1e-9) && got <= Math.max(truth * 1.25 + 1e-9, 0.001), `q${q}: ${got} vs ${truth}`);
    }
    const other = new LatencyHistogram();
    for (const x of b) other.add(x);
    const both = new LatencyHistogram();
    for (const x of [...a, ...b]) both.add(x);
    h.merge(other);
    assert.deepEqual([...h.counts], [...both.counts]);
    assert.equal(h.count, both.count);
    assert.equal(h.maxMs, both.maxMs);
  }));
});

test('windowed latency: the recent view forgets slots older than the window, the total keeps everything', () => {
  const w = new WindowedLatency(10, 1000);
  w.add(0, 100);
  w.add(500, 1);
  assert.equal(w.recent(900).count, 2);
  assert.equal(w.recent(900).maxMs, 100);
  for (let s = 1; s <= 12; s++) w.add(s * 1000, 2);
  const r = w.recent(12_000);
  assert.equal(r.count, 10, 'slots 3..12');
  assert.equal(r.maxMs, 2);
  assert.equal(w.sinceStart().count, 14);
  assert.equal(w.sinceStart().maxMs, 100);
  assert.equal(w.recent(30_000).count, 0, 'nothing in the last 10 s');
  // a slot reused after the ring wrapped starts empty
  w.add(30_000, 7);
  assert.deepEqual([w.recent(30_000).count, w.recent(30_000).maxMs], [1, 7]);
});
