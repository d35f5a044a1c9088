// A stall longer than a small policy's deadline: EIO reaches the client no earlier than the
// deadline and no later than 2 × it + 2 s; stats.failed counts it; the node recovers by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { NbdClient, NbdError } from '../helpers/nbd-client.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { sleep } from '../helpers/tools.js';

const EIO = 5;

test('stall past the deadline: EIO inside [deadline, 2×deadline + 2 s], then recovery', async (t) => {
  const pair = await startPair(t, {
    size: 8 * 1024 * 1024, viaProxy: true,
    remotePolicy: ['--resend-timeout', '300ms', '--max-resends', '3', '--reconnect-delay', '100ms'],
  });
  const deadline = 300 * (3 + 1);
  assert.equal((await pair.show()).policy.deadlineMs, deadline);
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  await pair.proxy!.ctl('stall');
  const submitted = Date.now();
  const outcome = await c.write(0, blockContent(0, 1)).then(() => 0, (e) => (e instanceof NbdError ? e.errno : -1));
  const elapsed = Date.now() - submitted;
  assert.equal(outcome, EIO);
  assert.ok(elapsed >= deadline - 20, `EIO after ${elapsed} ms, before the deadline ${deadline} ms`);
  assert.ok(elapsed <= 2 * deadline + 2000, `EIO after ${elapsed} ms, later than 2 × deadline + 2 s`);
  const show = await pair.show();
  assert.ok(show.stats.failed >= 1);
  await pair.proxy!.ctl('pass');
  await pair.rem.waitForState(pair.remoteName, 'ready', 10_000);
  await sleep(100);
  await c.write(4096, blockContent(1, 1));
  assert.equal(checkBlock(await c.read(4096, 4096), 1).version, 1, 'new I/O works after recovery');
});
