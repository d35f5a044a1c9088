// QD 256 against max-inflight 16: everything succeeds, the pool never exceeds 16, and each
// engine's peak RSS stays under 200 MiB.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startPair } from '../helpers/cluster.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

test('256 requests in flight against max-inflight 16', async (t) => {
  const pair = await startPair(t, { size: 64 * 1024 * 1024, remotePolicy: ['--max-inflight', '16'] });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  for (let round = 1; round <= 4; round++) {
    await Promise.all(Array.from({ length: 256 }, (_, i) => c.write((round * 256 + i) * 16384, Buffer.concat([
      blockContent(round * 1024 + i * 4, 1), blockContent(round * 1024 + i * 4 + 1, 1), blockContent(round * 1024 + i * 4 + 2, 1), blockContent(round * 1024 + i * 4 + 3, 1),
    ]))));
  }
  const reads = await Promise.all(Array.from({ length: 256 }, (_, i) => c.read((256 + i) * 16384, 4096)));
  reads.forEach((buf, i) => assert.equal(checkBlock(buf, 1024 + i * 4).version, 1));
  const show = await pair.show();
  assert.ok(show.stats.inflightPeak <= 16, `inflightPeak ${show.stats.inflightPeak}`);
  assert.ok(show.stats.inflightPeak >= 8, 'the pool was actually used');
  assert.equal(show.stats.failed, 0);
  for (const [name, pid] of [['remote', pair.rem.pid], ['export', pair.exp.pid]] as const) {
    const rss = peakRssMiB(pid);
    assert.ok(rss <= 200, `${name} engine peak RSS ${rss.toFixed(1)} MiB > 200 MiB`);
  }
});
