// fio random read/write at queue depth 32 with crc32c verification through dst.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { requireTool, run } from '../helpers/tools.js';

test('fio --ioengine=nbd randrw QD32 --verify=crc32c passes through dst', async (t) => {
  if (!requireTool(t, 'fio', 'fio')) return;
  const pair = await startPair(t, { size: 64 * 1024 * 1024 });
  const res = await run('fio', [
    '--name=verify', '--ioengine=nbd', `--uri=${pair.uri}`, '--rw=randrw', '--bs=4k', '--iodepth=32',
    '--size=32M', '--verify=crc32c', '--verify_state_save=0', '--verify_fatal=1', '--do_verify=1', '--output-format=json',
  ], { timeoutMs: 120_000 });
  assert.equal(res.code, 0, res.stderr + res.stdout.slice(-2000));
  const job = JSON.parse(res.stdout.slice(res.stdout.indexOf('{'))).jobs[0];
  assert.equal(job.error, 0);
  assert.ok(job.write.io_bytes > 0 && job.read.io_bytes > 0, 'both reads and writes happened');
  const show = await pair.show();
  assert.equal(show.stats.failed, 0);
  assert.ok(show.stats.completed > 0);
});
