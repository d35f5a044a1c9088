// An idle connection to a peer that stops answering (SIGSTOP) is detected within
// 4 ping intervals + 2 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';

test('SIGSTOPped export detected idle within 4 × ping-interval + 2 s', async (t) => {
  const pair = await startPair(t, { size: 1024 * 1024, remotePolicy: ['--ping-interval', '1s'] });
  const stoppedAt = Date.now();
  process.kill(pair.exp.pid, 'SIGSTOP');
  t.after(() => { try { process.kill(pair.exp.pid, 'SIGCONT'); } catch { /* gone */ } });
  const show = await pair.rem.waitForState(pair.remoteName, ['backoff', 'connecting'], 4 * 1000 + 2000 + 1000);
  const detectedIn = Date.now() - stoppedAt;
  assert.ok(detectedIn <= 4 * 1000 + 2000, `detected after ${detectedIn} ms`);
  assert.notEqual(show.state, 'ready');
  process.kill(pair.exp.pid, 'SIGCONT');
  await pair.rem.waitForState(pair.remoteName, 'ready', 15_000);
});
