// The export engine is SIGKILLed during a fio --verify write workload and restarted 3 s later:
// fio sees no I/O error, verification passes, and requests really were replayed. The export is
// stopped (SIGSTOP) until the remote has writes in flight, then killed: at fio's rate-limited pace
// a bare SIGKILL often lands between requests, and whether anything is replayed becomes a race.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { requireTool, run, sleep, waitFor } from '../helpers/tools.js';

test('SIGKILL the export mid-write, restart after 3 s: no I/O error, verify passes, replayed > 0', async (t) => {
  if (!requireTool(t, 'fio', 'fio')) return;
  const pair = await startPair(t, { size: 64 * 1024 * 1024, fixedPort: true });
  const fio = run('fio', [
    '--name=killed', '--ioengine=nbd', `--uri=${pair.uri}`, '--rw=randwrite', '--bs=64k', '--iodepth=16',
    '--size=48M', '--verify=crc32c', '--verify_state_save=0', '--verify_fatal=1', '--do_verify=1', '--rate=12m', '--output-format=json',
  ], { timeoutMs: 150_000 });
  await sleep(1500);
  await pair.exp.kill('SIGSTOP');
  await waitFor('writes in flight to the stopped export', async () => (await pair.show()).stats.inflight > 0);
  await pair.exp.kill('SIGKILL');
  const killedAt = Date.now();
  await sleep(3000);
  await pair.exp.restart({ config: pair.exportConfig });
  await pair.exp.waitForState(pair.exportName, 'listening', 10_000);
  const res = await fio;
  assert.equal(res.code, 0, `fio failed: ${res.stderr}\n${res.stdout.slice(-1500)}`);
  const job = JSON.parse(res.stdout.slice(res.stdout.indexOf('{'))).jobs[0];
  assert.equal(job.error, 0);
  const show = await pair.show();
  assert.ok(show.stats.replayed > 0, `requests were in flight and replayed (stats ${JSON.stringify(show.stats)})`);
  assert.equal(show.stats.failed, 0);
  assert.ok(show.stats.reconnects >= 1);
  assert.ok(Date.now() - killedAt < 150_000);
});
