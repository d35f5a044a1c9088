// A hung NBD server behind the export's backend (issue 17), on an injected clock: the server's
// connection stays up but its replies stop (a gate freezes them). Nothing happens before the oldest
// request has waited the export's resend-timeout; then the backend drops the link, reconnects and
// re-issues the request, which completes with the data written before the hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FakeClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { DEFAULT_POLICY, type Policy } from '../../src/engine/policy.js';
import { NbdBackend } from '../../src/engine/export/nbd-backend.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { nbdGate } from '../helpers/nbd-gate.js';
import { blocksContent, checkBlocks } from '../helpers/blocks.js';
import { requireTool, sleep, waitFor } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

test('NBD backend: a server that stops answering is dropped after resend-timeout, the request re-issued on a new link', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const dir = tmpDir(t);
  const sock = join(dir, 'nbdkit.sock'), front = join(dir, 'gate.sock');
  await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, 'memory', '16M'], sock);
  const g = await nbdGate(t, front, sock);
  const clock = new FakeClock();
  const policy: Policy = { ...DEFAULT_POLICY, resendTimeoutMs: 3000, reconnectDelayMs: 100 };
  const links: boolean[] = [];
  const backend = await NbdBackend.open(`nbd+unix:///?socket=${front}`, { clock, log: createLogger('error', 'text', () => {}), policy: () => policy,
    onLink: (up) => links.push(up) });
  t.after(() => backend.close());
  await backend.write(0, Buffer.from(blocksContent(0, 5, 4)), false);

  g.freeze();
  let done = false;
  const read = backend.read(0, 4 * 4096).finally(() => { done = true; });
  clock.advance(1000);
  const later = backend.read(4096, 4096); // a younger request: it must not push the oldest's limit back
  clock.advance(1999);
  await sleep(50); // the socket I/O a premature drop would do
  assert.deepEqual({ state: backend.show().state, done, accepted: g.state.accepted }, { state: 'connected', done: false, accepted: 1 },
    'the link is kept until the oldest request has waited resend-timeout');

  clock.advance(1);
  await waitFor('the backend to drop the silent link', () => backend.show().state === 'reconnecting');
  assert.deepEqual(links, [false]);
  clock.advance(100); // reconnect-delay: the new link goes through the gate unfrozen
  assert.deepEqual(checkBlocks(await read, 0), [5, 5, 5, 5], 'the read was re-issued and answered');
  assert.deepEqual(checkBlocks(await later, 1), [5]);
  assert.equal(g.state.accepted, 2);
  const show = backend.show();
  assert.deepEqual({ state: show.state, reconnects: show.reconnects, reissued: show.reissued }, { state: 'connected', reconnects: 1, reissued: 2 });
  assert.deepEqual(links, [false, true]);
});
