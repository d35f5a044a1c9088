// `dst events` during a killed-and-restarted export tells an operator what happened.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blockContent } from '../helpers/blocks.js';
import { sleep } from '../helpers/tools.js';

test('events tell disconnected → backoff → connected → replayed around an export restart', async (t) => {
  const pair = await startPair(t, { size: 8 * 1024 * 1024, fixedPort: true, remotePolicy: ['--reconnect-delay', '200ms'],
    // the export holds the write at offset 0, so it is surely in flight when the engine dies
    exportEnv: { DST_TEST_HOLD_WRITE: '0:1000' } });
  const stream = await pair.rem.events({ node: pair.remoteName });
  t.after(() => stream.close());
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  const writes = Array.from({ length: 8 }, (_, i) => c.write(i * 4096, blockContent(i, 1)));
  await sleep(300);
  await pair.exp.kill('SIGKILL');
  await stream.waitForEvent('disconnected', pair.remoteName, 10_000);
  await stream.waitFor((e) => e.event === 'state-changed' && e.to === 'backoff', 10_000, 'state-changed to backoff');
  await sleep(1000);
  await pair.exp.restart({ config: pair.exportConfig });
  await Promise.all(writes);
  const connected = await stream.waitForEvent('connected', pair.remoteName, 15_000);
  assert.match(connected.sessionId ?? '', /^[0-9a-f]{32}$/);
  const replayed = await stream.waitForEvent('replayed', pair.remoteName, 10_000);
  assert.ok((replayed.count ?? 0) >= 1);
  const disc = stream.records.find((e) => e.event === 'disconnected')!;
  assert.ok(disc.reason && disc.reason.length > 0, 'disconnected says why');
});
