// The NBD backend's reconnect on an injected clock (issue 17): after the server drops, attempts
// come at reconnect-delay, then twice that after each failure; what waits is re-issued once a link
// is back (same data read back); a request that has waited past the policy's deadline fails with
// EIO at the next attempt instead. The server is nbdkit memory behind a gate (helpers/nbd-gate.ts)
// that refuses (accepts and closes) or forwards connections, so attempts are counted without sleeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FakeClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { DEFAULT_POLICY, type Policy } from '../../src/engine/policy.js';
import { deadlineMs } from '../../src/engine/types.js';
import { NbdBackend } from '../../src/engine/export/nbd-backend.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { nbdGate } from '../helpers/nbd-gate.js';
import { blocksContent, checkBlocks } from '../helpers/blocks.js';
import { requireTool, waitFor } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

test('NBD backend reconnect: delay doubles per failure on the injected clock; waiters re-issued; past the deadline → EIO', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const dir = tmpDir(t);
  const sock = join(dir, 'nbdkit.sock'), front = join(dir, 'gate.sock');
  await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, 'memory', '16M'], sock);
  const g = await nbdGate(t, front, sock);
  const clock = new FakeClock();
  const policy: Policy = { ...DEFAULT_POLICY, reconnectDelayMs: 100 };
  const links: boolean[] = [];
  let failed = 0; // attempts the backend has given up on (its log says so)
  const log = createLogger('info', 'text', (line) => { if (line.includes('reconnect failed')) failed++; });
  const backend = await NbdBackend.open(`nbd+unix:///?socket=${front}`, { clock, log, policy: () => policy, onLink: (up) => links.push(up) });
  t.after(() => backend.close());
  await backend.write(0, Buffer.from(blocksContent(0, 7, 4)), false);

  /** The next attempt comes `delay` ms after the last one: not 1 ms sooner. Resolves once it failed (the gate is shut). */
  const attemptAt = async (delay: number): Promise<void> => {
    const before = g.state.accepted, failedBefore = failed;
    clock.advance(delay - 1);
    await new Promise((resolve) => setTimeout(resolve, 20)); // the socket I/O that a premature attempt would do
    assert.equal(g.state.accepted, before, `no attempt before ${delay} ms`);
    clock.advance(1);
    await waitFor(`the attempt at ${delay} ms to fail`, () => failed === failedBefore + 1);
    assert.equal(g.state.accepted, before + 1, `one attempt at ${delay} ms`);
  };

  g.shut();
  await waitFor('the backend to see the link go', () => backend.show().state === 'reconnecting');
  assert.deepEqual(links, [false]);
  let waitingDone = false;
  const waiting = backend.read(0, 4 * 4096).finally(() => { waitingDone = true; });
  for (const delay of [100, 200, 400, 800]) await attemptAt(delay);
  assert.equal(waitingDone, false, 'the read waits through the outage');

  g.state.open = true;
  clock.advance(1600);
  assert.deepEqual(checkBlocks(await waiting, 0), [7, 7, 7, 7], 'the waiting read was re-issued on the new link');
  assert.deepEqual({ state: backend.show().state, reconnects: backend.show().reconnects }, { state: 'connected', reconnects: 1 });
  assert.deepEqual(links, [false, true]);

  // after a success the delay starts again at reconnect-delay; a request older than the deadline
  // fails at the first attempt that finds it so
  Object.assign(policy, { resendTimeoutMs: 100, maxResends: 2 });
  assert.equal(deadlineMs(policy), 300);
  g.shut();
  await waitFor('the second loss', () => backend.show().state === 'reconnecting');
  let staleErr: NodeJS.ErrnoException | null = null;
  const stale = backend.read(0, 4096).catch((err: NodeJS.ErrnoException) => { staleErr = err; });
  await attemptAt(100); // 100 ms old
  await attemptAt(200); // 300 ms: not older than the deadline yet
  assert.equal(staleErr, null);
  await attemptAt(400); // 700 ms
  await waitFor('the stale read to fail', () => staleErr !== null, 5000);
  await stale;
  assert.equal((staleErr as NodeJS.ErrnoException | null)?.code, 'EIO', 'a request waiting past the deadline fails with EIO');
  assert.match((staleErr as Error | null)?.message ?? '', /unreachable for longer than the deadline/);

  g.state.open = true;
  clock.advance(800);
  await waitFor('the link back', () => backend.show().state === 'connected');
  assert.equal(backend.show().reconnects, 2);
  assert.deepEqual(checkBlocks(await backend.read(0, 4 * 4096), 0), [7, 7, 7, 7], 'the data survived both outages');
});
