// Fencing and dedup (DESIGN §8): a new connection of a session fences the old one, a replayed
// write is answered from the record, so a stale write never lands after a newer one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Cmd, Flag, Op } from '../../src/protocol/wire.js';
import { exportTestCounters } from '../../src/engine/export/export-node.js';
import { type Fixture, fixture, connected, pattern, until } from '../helpers/export-fixture.js';

test('export: fencing — a second HELLO with the same session id kills the first socket', async () => {
  const f = await fixture();
  try {
    const session = randomBytes(16);
    const { c: first } = await connected(f, session);
    assert.equal((await first.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, 0);
    const { c: second } = await connected(f, session);
    await first.closedP;
    assert.equal(second.closed, false);
    assert.equal((await second.io(Op.READ, 0, 512)).status, 0);
    assert.equal(f.rt.show().stats.reconnects, 1);
    assert.ok(f.logs.some((l) => l.includes('fenced')));
    // another session is not affected
    const { c: other } = await connected(f);
    assert.equal(second.closed, false);
    other.close();
    second.close();
  } finally {
    await f.stop();
  }
});

/**
 * The resend scenario fencing exists for: write A is held in the backend when the link dies;
 * the client reconnects, replays A (REPLAY) and then writes B to the same place. Without fencing
 * the stale original A lands after B: the data reverts.
 */
async function resendScenario(env: NodeJS.ProcessEnv): Promise<{ final: Buffer; replayStatus: number; f: Fixture }> {
  const f = await fixture({ env: { DST_TEST_HOLD_WRITE: '131072:400', ...env } });
  const session = randomBytes(16);
  const { c: a } = await connected(f, session);
  a.send({ cmd: Cmd.IO, op: Op.WRITE, offset: 131072, length: 4096, id: 1, payload: pattern(0xaa) });
  await until(() => f.rt.show().stats.inflight === 1);
  a.close(); // link lost with write 1 in the backend
  const { c: b } = await connected(f, session);
  // replay of id 1 carrying different bytes: if it ran, the disk would show 0xcc
  const replay = await b.io(Op.WRITE, 131072, 4096, { id: 1, flags: Flag.REPLAY, data: pattern(0xcc) });
  assert.equal((await b.io(Op.WRITE, 131072, 4096, { id: 2, ackedBelow: 2, data: pattern(0xbb) })).status, 0);
  await until(() => exportTestCounters(f.rt)!.heldWritesExecuted === 1);
  const final = (await b.io(Op.READ, 131072, 4096, { id: 3 })).payload;
  b.close();
  await f.stop();
  return { final, replayStatus: replay.status, f };
}

test('export: fencing + dedup — the replayed write is answered from the record; no revert', async () => {
  const { final, replayStatus, f } = await resendScenario({});
  assert.equal(replayStatus, 0, 'the recorded status of write 1');
  assert.deepEqual(final, pattern(0xbb), 'the newer write stays');
  assert.ok(f.logs.some((l) => l.includes('waiting for the old connection')));
  assert.equal(f.rt.show().stats.replayed, 1);
});

test('export: DST_TEST_NO_FENCING=1 shows the revert fencing prevents', async () => {
  const { final } = await resendScenario({ DST_TEST_NO_FENCING: '1' });
  assert.deepEqual(final, pattern(0xaa), 'the stale write landed after the newer one');
});

test('export: a REPLAY for an unknown session just runs; a replayed READ runs', async () => {
  const f = await fixture();
  try {
    const { c } = await connected(f);
    assert.equal((await c.io(Op.WRITE, 0, 512, { id: 5, flags: Flag.REPLAY, data: pattern(0x11, 512) })).status, 0);
    assert.deepEqual((await c.io(Op.READ, 0, 512, { id: 5, flags: Flag.REPLAY })).payload, pattern(0x11, 512));
    c.close();
  } finally {
    await f.stop();
  }
});
