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

  const DELAY = 300, N = 16;
  /** Each request's own time: none may be quicker than the server's delay. */
  const timed = async <T>(p: () => Promise<T>): Promise<T> => {
    const t1 = performance.now();
    const r = await p();
    const ms = performance.now() - t1;
    assert.ok(ms >= DELAY - 1, `a request took ${ms.toFixed(0)} ms, less than the ${DELAY} ms delay`);
    return r;
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: N }, (_, i) => timed(() => c.write(i * 4096, blockContent(i, 1)))));
  const reads = await Promise.all(Array.from({ length: N }, (_, i) => timed(() => c.read(i * 4096, 4096))));
  const ms = performance.now() - t0;
  reads.forEach((b, i) => assert.equal(checkBlock(b, i).version, 1));
  assert.ok(ms >= 2 * DELAY, `two rounds of ${DELAY} ms delay took ${ms.toFixed(0)} ms`);
  // in flight together: two rounds and some overhead, far from the ${2 * N} × ${DELAY} ms of one at a time
  assert.ok(ms < 6 * DELAY, `${2 * N} requests in two concurrent rounds took ${ms.toFixed(0)} ms`);
  const remote = await pair.show();
  assert.equal(remote.stats.resends, 0, 'nothing resent');
  assert.equal(remote.stats.failed, 0);
  assert.equal(remote.stats.reconnects, 0);
});
