// Refusal reports are rate-limited per address: one per 10 s, the next one carries the count
// suppressed in between; a flood of source addresses cannot grow the table past its bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/util/clock.js';
import { REPORT_INTERVAL_MS, ReportLimiter } from '../../src/engine/admission.js';

test('report limiter: one report per key per interval, with the suppressed count, in a bounded table', () => {
  const clock = new FakeClock();
  const lim = new ReportLimiter(clock, REPORT_INTERVAL_MS, 16);
  assert.deepEqual(lim.take('10.0.0.1'), { suppressed: 0 }, 'the first refusal is reported');
  for (let i = 0; i < 5; i++) assert.equal(lim.take('10.0.0.1'), null, 'then it is quiet');
  assert.deepEqual(lim.take('10.0.0.2'), { suppressed: 0 }, 'another address has its own budget');
  clock.advance(REPORT_INTERVAL_MS - 1);
  assert.equal(lim.take('10.0.0.1'), null, 'not before the interval');
  clock.advance(1);
  assert.deepEqual(lim.take('10.0.0.1'), { suppressed: 6 }, 'after it, with what was suppressed');
  assert.equal(lim.take('10.0.0.1'), null);

  for (let i = 0; i < 1000; i++) lim.take(`192.0.2.${i}`);
  assert.ok(lim.size <= 16, `the table stays bounded (${lim.size})`);
  assert.deepEqual(lim.take('192.0.2.999'), null, 'the newest addresses are still remembered');
});
