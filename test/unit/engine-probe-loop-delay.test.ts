// The event-loop delay the metrics endpoint exposes is the engine's summary of its last complete
// interval, not reset by scrapes: two scrapers in a row see the same figures, and the figures
// move only when the engine's clock closes an interval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/util/clock.js';
import { EngineProbe, LOOP_INTERVAL_MS, type LoopDelay } from '../../src/engine/metrics/collect.js';

/** A delay histogram that holds what the test says it saw (ns). */
class FakeLoop implements LoopDelay {
  seen: number[] = [];
  resets = 0;
  disabled = false;
  get count(): number { return this.seen.length; }
  get max(): number { return Math.max(0, ...this.seen); }
  percentile(p: number): number {
    const s = [...this.seen].sort((a, b) => a - b);
    return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)] ?? 0;
  }
  reset(): void { this.seen = []; this.resets++; }
  disable(): void { this.disabled = true; }
}

test('event-loop delay: per engine interval, the same for every scraper', () => {
  const clock = new FakeClock();
  const loop = new FakeLoop();
  const probe = new EngineProbe({ cryptoBusySeconds: () => 0, payloadPoolFreeBytes: () => 0, clock, loop });
  loop.seen = [1e6, 2e6, 30e6];
  const first = probe.sample();
  assert.equal(first.loopDelayMax, 0.03, 'before an interval closes: what was seen so far');
  const second = probe.sample();
  assert.deepEqual([second.loopDelayP99, second.loopDelayMax], [first.loopDelayP99, first.loopDelayMax], 'a second scraper sees the same');
  assert.equal(first.loopDelayP99, 0.03);
  assert.equal(loop.resets, 0, 'a scrape resets nothing');

  clock.advance(LOOP_INTERVAL_MS);
  loop.seen.push(90e6); // the next interval's samples do not show until it closes
  const closed = probe.sample();
  assert.equal(closed.loopDelayMax, 0.03);
  assert.equal(probe.sample().loopDelayP99, closed.loopDelayP99);
  clock.advance(LOOP_INTERVAL_MS);
  assert.equal(probe.sample().loopDelayMax, 0.09);
  assert.equal(loop.resets, 2);
  probe.close();
  assert.equal(clock.pending(), 0, 'no timer left');
  assert.ok(loop.disabled);
});
