// The rates of `status` (RequestMetrics.rates) are the window's counts divided by the time the
// window covers: a node younger than the 10 s window is not divided by 10 s, and an old one by the
// nine full slots and the part of the current one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/util/clock.js';
import { RequestMetrics } from '../../src/engine/metrics/request-metrics.js';

/** `perSecond` reads of 4 KiB every second for `seconds`, in 10 ms steps. */
function load(clock: FakeClock, m: RequestMetrics, perSecond: number, seconds: number): void {
  const every = 1000 / perSecond;
  for (let t = 0; t < seconds * 1000; t += every) {
    m.done('read', clock.now(), null, 4096);
    clock.advance(every);
  }
}

test('rates: divided by the window\'s age, not a fixed 10 s', () => {
  const clock = new FakeClock(1_000_000);
  const m = new RequestMetrics(clock);
  load(clock, m, 100, 4);
  const young = m.rates();
  assert.ok(Math.abs(young.readIops - 100) <= 1, `4 s old at 100/s: ${young.readIops} IOPS`);
  assert.ok(Math.abs(young.readBytesPerSecond - 100 * 4096) <= 4096, `${young.readBytesPerSecond} B/s`);
  load(clock, m, 100, 16);
  clock.advance(500); // mid-slot: the window is 9.5 s
  const old = m.rates();
  assert.ok(old.readIops >= 94 && old.readIops <= 100, `an old window at 100/s (the last 0.5 s idle): ${old.readIops} IOPS`);
  clock.advance(30_000);
  assert.equal(m.rates().readIops, 0, 'nothing in the window');
});
