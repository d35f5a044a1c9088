// /metrics scraped while verified I/O runs through a remote node: promtool accepts the exposition,
// the byte counters are the bytes the test moved, the histogram counts are the request counts, and
// a node added or removed appears in or disappears from the next scrape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startPair } from '../helpers/cluster.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { requireTool } from '../helpers/tools.js';
import { sample, scrape } from '../helpers/metrics.js';

test('metrics: promtool-valid, counters match the I/O done, nodes come and go', async (t) => {
  if (!requireTool(t, 'promtool', 'prometheus')) return;
  const pair = await startPair(t, { size: 16 * 1024 * 1024, remoteEngineArgs: ['--metrics-listen', '127.0.0.1:0'] });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  const node = { node: pair.remoteName };

  const blocks = 64;
  const during: Promise<string>[] = [];
  for (let i = 0; i < blocks; i++) {
    await c.write(i * 4096, blockContent(i, 1));
    if (i % 16 === 0) during.push(scrape(pair.rem)); // scrapes while the writes go on
  }
  await c.flush();
  const data = await c.read(0, blocks * 4096);
  for (let i = 0; i < blocks; i++) assert.equal(checkBlock(data.subarray(i * 4096, (i + 1) * 4096), i).version, 1);
  await Promise.all(during);

  const text = await scrape(pair.rem);
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);

  assert.equal(sample(text, 'dst_write_bytes_total', node), blocks * 4096);
  assert.equal(sample(text, 'dst_read_bytes_total', node), blocks * 4096);
  const counts = { write: blocks, read: 1, flush: 1, trim: 0 };
  for (const [op, n] of Object.entries(counts)) {
    assert.equal(sample(text, 'dst_requests_total', { ...node, op }), n, `${op} requests`);
    assert.equal(sample(text, 'dst_request_duration_seconds_count', { ...node, op }), n, `${op} histogram count`);
    assert.equal(sample(text, 'dst_request_duration_seconds_bucket', { ...node, op, le: '+Inf' }), n, `${op} +Inf bucket`);
  }
  assert.equal(sample(text, 'dst_node_state', { ...node, state: 'ready' }), 1);
  assert.equal(sample(text, 'dst_nbd_connections', node), 1);
  assert.ok(sample(text, 'process_resident_memory_bytes', {})! > 0);

  await pair.rem.dstJson(['node', 'add', 'extra', '--remote', pair.listen, '--export', pair.exportName]);
  assert.equal(sample(await scrape(pair.rem), 'dst_node_state', { node: 'extra', state: 'configured' }), 1, 'a node added appears');
  await pair.rem.dstJson(['node', 'del', 'extra']);
  assert.doesNotMatch(await scrape(pair.rem), /node="extra"/, 'a node removed disappears');
});
