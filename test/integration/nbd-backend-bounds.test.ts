// The NBD backend's bounds (issue 17): at most MAX_INFLIGHT requests on the wire and MAX_QUEUED
// waiting; one more fails at once with EAGAIN. With the server's replies held back (a gate freezes
// them) the server is sent exactly MAX_INFLIGHT request headers, however many wait; once the silent
// link is dropped (resend-timeout on the injected clock) every waiting request completes on the new one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FakeClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { DEFAULT_POLICY, type Policy } from '../../src/engine/policy.js';
import { REQUEST_HEADER_SIZE } from '../../src/protocol/nbd.js';
import { MAX_INFLIGHT, MAX_QUEUED, NbdBackend } from '../../src/engine/export/nbd-backend.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { nbdGate } from '../helpers/nbd-gate.js';
import { blocksContent, checkBlocks } from '../helpers/blocks.js';
import { requireTool, sleep, waitFor } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

test(`NBD backend bounds: ${MAX_INFLIGHT} on the wire, ${MAX_QUEUED} queued, then EAGAIN; all complete after the stall`, async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const dir = tmpDir(t);
  const sock = join(dir, 'nbdkit.sock'), front = join(dir, 'gate.sock');
  await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, 'memory', '16M'], sock);
  const g = await nbdGate(t, front, sock);
  const clock = new FakeClock();
  const policy: Policy = { ...DEFAULT_POLICY, resendTimeoutMs: 1000, reconnectDelayMs: 10 };
  const backend = await NbdBackend.open(`nbd+unix:///?socket=${front}`, { clock, log: createLogger('error', 'text', () => {}), policy: () => policy });
  t.after(() => backend.close());
  await backend.write(0, Buffer.from(blocksContent(0, 9, 16)), false);

  const base = g.state.toServer;
  g.freeze();
  const n = MAX_INFLIGHT + MAX_QUEUED;
  const reads = Array.from({ length: n }, (_, i) => backend.read((i % 16) * 4096, 4096));
  await assert.rejects(backend.read(0, 4096), (e: NodeJS.ErrnoException) => e.code === 'EAGAIN', 'one beyond the queue is refused at once');
  await sleep(200); // the socket I/O any request beyond the window would do
  await waitFor('the window on the wire', () => g.state.toServer - base >= MAX_INFLIGHT * REQUEST_HEADER_SIZE);
  assert.equal(g.state.toServer - base, MAX_INFLIGHT * REQUEST_HEADER_SIZE, `exactly ${MAX_INFLIGHT} requests reach the server at once`);

  clock.advance(1000); // the oldest waited resend-timeout: the link is dropped
  await waitFor('the link to drop', () => backend.show().state === 'reconnecting');
  clock.advance(10);
  const got = await Promise.all(reads);
  got.forEach((b, i) => assert.deepEqual(checkBlocks(b, i % 16), [9]));
  assert.equal(backend.show().reissued, MAX_INFLIGHT, 'what was on the wire was sent again');
});
