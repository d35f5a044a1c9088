// The NBD endpoint reports each request to its target's recorder from arrival to reply: the
// latency lands in its op (WRITE_ZEROES and TRIM as trim), refusals and failures count by errno.
// Time is a FakeClock moved while the target holds the completions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd } from '../../src/protocol/nbd.js';
import { FakeClock } from '../../src/util/clock.js';
import { RequestMetrics } from '../../src/engine/metrics/request-metrics.js';
import { RawClient, fixture, pattern } from '../helpers/nbd-raw-client.js';
import { waitFor } from '../helpers/tools.js';

test('endpoint latency: arrival to reply per op, refusals and failures by errno', async (t) => {
  const clock = new FakeClock();
  const metrics = new RequestMetrics(clock);
  const f = await fixture(t, { fail: (r) => (r.offset === 8192 ? 'EIO' : null) });
  Object.assign(f.target, { recorder: metrics });
  const c = await RawClient.connect(f.path);
  await c.open();

  f.target.hold();
  c.send({ type: Cmd.WRITE, offset: 0, length: 4096, payload: pattern(4096) });
  c.send({ type: Cmd.READ, cookie: 99n, offset: 0, length: 4096 });
  c.send({ type: Cmd.FLUSH, offset: 0, length: 0 });
  c.send({ type: Cmd.WRITE_ZEROES, offset: 4096, length: 4096 });
  c.send({ type: Cmd.TRIM, offset: 8192, length: 4096 }); // fails: EIO
  await waitFor('five requests at the target', () => f.target.held === 5 || null);
  clock.advance(50);
  f.target.release();
  for (let i = 0; i < 5; i++) await c.anyReply((k) => (k === 99n ? 4096 : 0));
  c.send({ type: Cmd.READ, offset: 1 << 20, length: 4096 }); // out of range: refused at once
  await c.simpleReply();

  const s = metrics.show().sinceStart;
  assert.deepEqual([s.read.count, s.write.count, s.flush.count, s.trim.count], [2, 1, 1, 2]);
  for (const op of ['write', 'flush'] as const) {
    assert.ok(s[op].p50Ms >= 50 && s[op].p50Ms < 50 * 1.25, `${op} p50 ${s[op].p50Ms}`);
    assert.equal(s[op].maxMs, 50);
  }
  assert.ok(s.read.p50Ms <= 0.001, 'the refused read took no time (the first bucket); the held one 50 ms');
  assert.equal(s.read.maxMs, 50);
  assert.deepEqual([...metrics.errors.trim], [['EIO', 1]]);
  assert.deepEqual([...metrics.errors.read], [['EINVAL', 1]]);
  assert.equal(metrics.errors.write.size, 0);

  // the last 10 s forget what is older; since start keeps it
  clock.advance(11_000);
  assert.equal(metrics.show().recent.write.count, 0);
  assert.equal(metrics.show().sinceStart.write.count, 1);
  c.destroy();
});
