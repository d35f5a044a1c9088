// PING is answered at once, even while a backend call is held and the connection is at its
// in-flight cap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, Op } from '../../src/protocol/wire.js';
import { exportTestCounters } from '../../src/engine/export/export-node.js';
import { fixture, connected, pattern } from '../helpers/export-fixture.js';

test('export: PING is answered while a backend call is held, and at the in-flight cap', async () => {
  const f = await fixture({ env: { DST_TEST_HOLD_WRITE: '65536:600' }, limits: { maxInflightPerConnection: 1 } });
  try {
    const { c } = await connected(f);
    const t0 = Date.now();
    c.send({ cmd: Cmd.IO, op: Op.WRITE, offset: 65536, length: 4096, id: 1, payload: pattern(1) });
    // at the cap (1): this read waits behind the held write
    c.send({ cmd: Cmd.IO, op: Op.READ, offset: 0, length: 512, id: 2 });
    c.send({ cmd: Cmd.PING, id: 99 });
    const pong = await c.take((x) => x.cmd === Cmd.PONG);
    assert.equal(pong.id, 99);
    assert.equal(c.has((x) => x.cmd === Cmd.IO_RESPONSE), false, 'PONG came while the write is still held');
    assert.equal(f.rt.show().stats.inflight, 1);
    assert.ok(f.rt.show().stats.oldestInflightMs! >= 0);
    const w = await c.take((x) => x.cmd === Cmd.IO_RESPONSE && x.id === 1);
    assert.equal(w.status, 0);
    assert.ok(Date.now() - t0 >= 550, 'the write was held');
    const r = await c.take((x) => x.cmd === Cmd.IO_RESPONSE && x.id === 2);
    assert.equal(r.status, 0);
    assert.equal(exportTestCounters(f.rt)!.heldWritesExecuted, 1);
    assert.ok(f.logs.some((l) => l.includes('held write executed')));
    c.close();
  } finally {
    await f.stop();
  }
});
