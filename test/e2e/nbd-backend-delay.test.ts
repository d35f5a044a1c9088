// nbdkit's delay filter behind the export (issue 17): the server's latency passes through to the
// client, and no request times out or is resent while the server is merely slow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

test('nbdkit delay filter: latency passes through, no spurious timeouts or resends', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const dir = tmpDir(t);
  const sock = join(dir, 'nbdkit.sock');
  const server = await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, '--filter=delay', 'memory', '16M', 'rdelay=300ms', 'wdelay=300ms'], sock);
  // a resend timeout above the server's delay: a slow answer must not be taken for a lost one
  const pair = await startPair(t, { disk: server.uri, remotePolicy: ['--resend-timeout', '2s'] });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());

  const t0 = Date.now();
  await Promise.all(Array.from({ length: 16 }, (_, i) => c.write(i * 4096, blockContent(i, 1))));
  const reads = await Promise.all(Array.from({ length: 16 }, (_, i) => c.read(i * 4096, 4096)));
  const ms = Date.now() - t0;
  reads.forEach((b, i) => assert.equal(checkBlock(b, i).version, 1));
  assert.ok(ms >= 600, `two rounds of 300 ms delay took ${ms} ms`);
  assert.ok(ms < 10_000, `requests in flight together: ${ms} ms`);
  const remote = await pair.show();
  assert.equal(remote.stats.resends, 0, 'nothing resent');
  assert.equal(remote.stats.failed, 0);
  assert.equal(remote.stats.reconnects, 0);
});
