// nbdinfo sees the remote disk through dst: size, flags, and the export list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { requireTool, run } from '../helpers/tools.js';

test('nbdinfo reports size and writable flags through two engines, and lists the export', async (t) => {
  if (!requireTool(t, 'nbdinfo', 'libnbd-bin')) return;
  const pair = await startPair(t, { size: 48 * 1024 * 1024 });
  const info = await run('nbdinfo', ['--json', pair.uri]);
  assert.equal(info.code, 0, info.stderr);
  const json = JSON.parse(info.stdout);
  const exp = json.exports[0];
  assert.equal(exp['export-size'], 48 * 1024 * 1024);
  assert.equal(exp['is_read_only'], false);
  assert.equal(exp['can_flush'], true);
  assert.equal(exp['can_fua'], true);
  assert.equal(exp['can_trim'], true);
  assert.equal(exp['can_zero'], true);
  assert.equal(exp['can_multi_conn'], true);
  const list = await run('nbdinfo', ['--list', '--json', pair.uri]);
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(JSON.parse(list.stdout).exports.map((e: { 'export-name': string }) => e['export-name']), [pair.remoteName]);
});
