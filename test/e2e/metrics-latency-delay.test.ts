// Latency as node show and the histogram report it: with the fault proxy holding every chunk 25 ms
// each way (50 ms added per request), p50 write latency is at least 50 ms and below 100 ms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { blockContent } from '../helpers/blocks.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { histogramP50, scrape } from '../helpers/metrics.js';
import type { NodeShow } from '../../src/engine/types.js';

test('latency: a 50 ms delay on the way to the export shows as p50 write latency in [50, 100) ms', async (t) => {
  const pair = await startPair(t, { size: 4 * 1024 * 1024, viaProxy: true, remoteEngineArgs: ['--metrics-listen', '127.0.0.1:0'] });
  await pair.proxy!.ctl('delay', '25ms');
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  for (let i = 0; i < 20; i++) await c.write(i * 4096, blockContent(i, 1));

  const show = await pair.rem.dstJson<NodeShow>(['node', 'show', pair.remoteName]);
  const w = show.latency!.sinceStart.write;
  assert.equal(w.count, 20);
  assert.ok(w.p50Ms >= 50 && w.p50Ms < 100, `node show p50 ${w.p50Ms} ms`);
  assert.ok(show.latency!.recent.write.p50Ms >= 50, 'the last 10 s hold the same writes');
  const p50 = histogramP50(await scrape(pair.rem), 'dst_request_duration_seconds', { node: pair.remoteName, op: 'write' });
  assert.ok(p50 >= 0.05 && p50 < 0.1, `histogram p50 bound ${p50} s`);
});
