// The Prometheus exposition (engine/metrics/exposition.ts) passes `promtool check metrics`
// (Debian package prometheus): HELP and TYPE on every family, escaped label values and help,
// cumulative histogram buckets ending in +Inf with _sum and _count in seconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LatencyHistogram } from '../../src/engine/metrics/histogram.js';
import { exposition } from '../../src/engine/metrics/exposition.js';
import { requireTool, run } from '../helpers/tools.js';

function sampleText(): { text: string; h: LatencyHistogram } {
  const h = new LatencyHistogram();
  for (const ms of [0.05, 0.3, 1, 1, 4, 50, 900, 2e6]) h.add(ms);
  const text = exposition([
    { kind: 'counter', name: 'dst_write_bytes_total', help: 'Bytes written.\nBy NBD clients \\ legs.', samples: [
      { labels: { node: 'vol' }, value: 4096 }, { labels: { node: 'a"b\\c\nd' }, value: 0 }] },
    { kind: 'gauge', name: 'dst_node_state', help: 'The node state (1 for the one it is in).', samples: [
      { labels: { node: 'vol', state: 'ready' }, value: 1 }, { labels: { node: 'vol', state: 'failed' }, value: 0 }] },
    { kind: 'gauge', name: 'dst_nbd_connections', help: 'NBD clients connected.', samples: [] },
    { kind: 'histogram', name: 'dst_request_duration_seconds', help: 'NBD request latency.', samples: [
      { labels: { node: 'vol', op: 'write' }, histogram: h }] },
  ]);
  return { text, h };
}

test('exposition: histogram buckets are cumulative, end in +Inf = count, sum in seconds', () => {
  const { text, h } = sampleText();
  const buckets = [...text.matchAll(/^dst_request_duration_seconds_bucket\{node="vol",op="write",le="([^"]+)"\} (\d+)$/gm)];
  const counts = buckets.map((m) => Number(m[2]));
  for (let i = 1; i < counts.length; i++) assert.ok(counts[i]! >= counts[i - 1]!);
  assert.equal(buckets.at(-1)![1], '+Inf');
  assert.equal(counts.at(-1), h.count);
  assert.equal(counts.at(-2), h.count - 1, 'the 2000 s sample is only in +Inf');
  const le1ms = buckets.find((m) => Number(m[1]) >= 0.001 && Number(m[1]) < 0.0013);
  assert.ok(le1ms, 'a bucket edge at 1 ms');
  assert.equal(Number(le1ms[2]), 4, 'four samples ≤ 1 ms');
  assert.match(text, new RegExp(`^dst_request_duration_seconds_sum\\{node="vol",op="write"\\} ${h.sumMs / 1000}$`, 'm'));
  assert.match(text, /^dst_write_bytes_total\{node="a\\"b\\\\c\\nd"\} 0$/m);
  assert.match(text, /^# HELP dst_write_bytes_total Bytes written\.\\nBy NBD clients \\\\ legs\.$/m);
});

test('exposition: promtool check metrics exits 0', async (t) => {
  if (!requireTool(t, 'promtool', 'prometheus')) return;
  const r = await run('promtool', ['check', 'metrics'], { input: sampleText().text, timeoutMs: 30_000 });
  assert.equal(r.code, 0, `promtool: ${r.stdout}${r.stderr}`);
  assert.equal((r.stdout + r.stderr).trim(), '', 'no lint complaints');
});
