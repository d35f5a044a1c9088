// An export counts the requests it serves: scraped during I/O through a remote node, its
// dst_requests_total and histogram counts per op are the requests the remote sent it (one per
// 4 KiB write, the one read, the flush), its bytes the bytes moved; `dst top` on the export's
// engine shows its IOPS while the writes go on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { blockContent, checkBlocks } from '../helpers/blocks.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { sample, scrape } from '../helpers/metrics.js';

test('metrics: an export\'s requests per op, bytes and IOPS', async (t) => {
  const metrics = ['--metrics-listen', '127.0.0.1:0'];
  const pair = await startPair(t, { size: 16 * 1024 * 1024, exportEngineArgs: metrics });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  const node = { node: pair.exportName };

  const blocks = 64;
  const during: Promise<string>[] = [];
  for (let i = 0; i < blocks; i++) {
    await c.write(i * 4096, blockContent(i, 1));
    if (i % 16 === 0) during.push(scrape(pair.exp));
  }
  await c.flush();
  assert.deepEqual(checkBlocks(await c.read(0, blocks * 4096), 0), new Array<number>(blocks).fill(1));
  await Promise.all(during);

  const text = await scrape(pair.exp);
  for (const [op, n] of Object.entries({ write: blocks, read: 1, flush: 1, trim: 0 })) {
    assert.equal(sample(text, 'dst_requests_total', { ...node, op }), n, `${op} requests`);
    assert.equal(sample(text, 'dst_request_duration_seconds_count', { ...node, op }), n, `${op} histogram count`);
  }
  assert.equal(sample(text, 'dst_write_bytes_total', node), blocks * 4096);
  assert.equal(sample(text, 'dst_read_bytes_total', node), blocks * 4096);
  assert.equal(sample(text, 'dst_nbd_connections', node), null, 'no NBD clients on an export');

  let writing = true;
  const loop = (async () => {
    for (let i = 0; writing; i = (i + 1) % blocks) await c.write(i * 4096, blockContent(i, 2));
  })();
  try {
    const top = await pair.exp.dstJson<{ nodes: { name: string; writeIops: number | null }[] }>(['top', '--once']);
    const row = top.nodes.find((n) => n.name === pair.exportName)!;
    assert.ok((row.writeIops ?? 0) > 0, `dst top shows the export's writes: ${JSON.stringify(row)}`);
  } finally {
    writing = false;
    await loop;
  }
});
