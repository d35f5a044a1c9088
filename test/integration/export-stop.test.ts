// Stopping an export: a drain answers the in-flight write first; --force destroys at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Cmd, Op } from '../../src/protocol/wire.js';
import { exportTestCounters } from '../../src/engine/export/export-node.js';
import { fixture, connected, pattern, until } from '../helpers/export-fixture.js';

test('export: stop drains — the in-flight write finishes and is answered first', async () => {
  const f = await fixture({ env: { DST_TEST_HOLD_WRITE: '0:300' } });
  const { c } = await connected(f);
  c.send({ cmd: Cmd.IO, op: Op.WRITE, offset: 0, length: 4096, id: 1, payload: pattern(0x42) });
  await until(() => f.rt.show().stats.inflight === 1);
  const stopped = f.rt.stop({ force: false });
  assert.equal(f.rt.state, 'stopping');
  const r = await c.take((x) => x.cmd === Cmd.IO_RESPONSE && x.id === 1);
  assert.equal(r.status, 0);
  await c.closedP;
  await stopped;
  assert.equal(f.rt.state, 'configured');
  assert.deepEqual((await readFile(f.disk)).subarray(0, 4096), pattern(0x42));
});

test('export: stop --force destroys connections at once; the held write never lands', async () => {
  const f = await fixture({ env: { DST_TEST_HOLD_WRITE: '0:5000' } });
  const { c } = await connected(f);
  c.send({ cmd: Cmd.IO, op: Op.WRITE, offset: 0, length: 4096, id: 1, payload: pattern(0x42) });
  await until(() => f.rt.show().stats.inflight === 1);
  const t0 = Date.now();
  await f.rt.stop({ force: true });
  assert.ok(Date.now() - t0 < 1000);
  await c.closedP;
  assert.equal(f.rt.state, 'configured');
  assert.equal(exportTestCounters(f.rt)!.heldWritesExecuted, 0);
  assert.deepEqual((await readFile(f.disk)).subarray(0, 4096), Buffer.alloc(4096));
});
