// The resync pace controller (layout/resync-pace.ts) under a fake clock and synthetic latency:
// it backs off when application latency rises, recovers when the device is idle or at baseline,
// and stays within resync-min-rate and resync-rate.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { ResyncPace, type PaceLimits } from '../../src/engine/layout/resync-pace.js';
import { FakeClock } from '../../src/util/clock.js';

const MiB = 1 << 20;
const WINDOW = 200;

/** One window of `n` samples of `ms` each, and copies of `copied` bytes, then the window closes. */
function windowOf(clock: FakeClock, pace: ResyncPace, n: number, ms: number, copied = 0): number {
  for (let k = 0; k < n; k++) {
    clock.advance(WINDOW / (n + 1));
    pace.sample(ms);
  }
  if (copied > 0) pace.copied(copied);
  clock.advance(WINDOW - (n * WINDOW) / (n + 1));
  return pace.rate();
}

function make(limits: PaceLimits = { min: 10 * MiB, cap: 0 }): { clock: FakeClock; pace: ResyncPace; lim: PaceLimits } {
  const clock = new FakeClock();
  const lim = { ...limits };
  return { clock, pace: new ResyncPace(clock, () => lim, { windowMs: WINDOW }), lim };
}

describe('resync pace', () => {
  it('starts at the floor and doubles while the device is idle, up to the cap', () => {
    const { clock, pace } = make({ min: 10 * MiB, cap: 200 * MiB });
    assert.equal(pace.rate(), 10 * MiB);
    const rates = [1, 2, 3, 4, 5, 6].map(() => windowOf(clock, pace, 0, 0));
    assert.deepEqual(rates, [20, 40, 80, 160, 200, 200].map((x) => x * MiB));
    assert.equal(pace.decision(), 'idle');
  });

  it('backs off multiplicatively when the p99 rises above the baseline, never below the floor', () => {
    const { clock, pace } = make({ min: 10 * MiB, cap: 0 });
    for (let k = 0; k < 5; k++) windowOf(clock, pace, 50, 0.5); // baseline ~0.5 ms
    const before = pace.rate();
    assert.equal(pace.decision(), 'baseline');
    const after = windowOf(clock, pace, 50, 8);
    assert.equal(pace.decision(), 'backoff');
    assert.equal(after, before / 2);
    for (let k = 0; k < 20; k++) windowOf(clock, pace, 50, 8);
    assert.equal(pace.rate(), 10 * MiB, 'the floor');
    assert.ok(pace.baseline()! < 1, 'the baseline stays the low-water of recent windows');
  });

  it('at baseline it adds the floor each window; idle again it recovers fast', () => {
    const { clock, pace } = make({ min: 10 * MiB, cap: 1000 * MiB });
    for (let k = 0; k < 3; k++) windowOf(clock, pace, 50, 0.5);
    for (let k = 0; k < 5; k++) windowOf(clock, pace, 50, 20);
    assert.equal(pace.rate(), 10 * MiB);
    windowOf(clock, pace, 50, 0.6);
    assert.equal(pace.decision(), 'baseline');
    assert.equal(pace.rate(), 20 * MiB);
    for (let k = 0; k < 6; k++) windowOf(clock, pace, 0, 0);
    assert.equal(pace.rate(), 1000 * MiB, 'idle: back to the cap');
  });

  it('a slow creep of the p99 during a long resync backs off: the baseline is the device without resync', () => {
    const { clock, pace } = make({ min: 10 * MiB, cap: 0 });
    for (let k = 0; k < 10; k++) windowOf(clock, pace, 50, 1); // the device alone: p99 ~1 ms
    const alone = pace.baseline()!;
    pace.start();
    // 60 s of resync while the p99 creeps up 0.02 ms per window: each window looks like the last
    const decisions: string[] = [];
    for (let k = 0; k < 300; k++) {
      windowOf(clock, pace, 50, 1 + 0.02 * k, 100 * MiB);
      decisions.push(pace.decision());
    }
    assert.equal(pace.baseline(), alone, 'the resync\'s windows never become the baseline');
    const first = decisions.indexOf('backoff');
    assert.ok(first > 0, 'it backed off');
    assert.ok(decisions.slice(0, first).every((d) => d === 'baseline'), 'and sped up until the creep passed the margin');
    assert.equal(pace.rate(), 10 * MiB, 'at 7 ms against 1 ms it sits at the floor');

    // the resync over, windows measure the device alone again (the last 25 of them)
    pace.stop();
    for (let k = 0; k < 30; k++) windowOf(clock, pace, 50, 5);
    assert.ok(pace.baseline()! > 4, `baseline ${pace.baseline()} follows the device alone`);
  });

  it('a resync that starts before any idle window keeps the lowest p99 since it started', () => {
    const { clock, pace } = make({ min: 10 * MiB, cap: 0 });
    pace.start();
    windowOf(clock, pace, 50, 1, 100 * MiB);
    const low = pace.baseline()!;
    for (let k = 0; k < 100; k++) windowOf(clock, pace, 50, 1 + 0.05 * k, 100 * MiB);
    assert.equal(pace.baseline(), low, 'it never rises with the resync\'s latency');
    assert.equal(pace.decision(), 'backoff');
  });

  it('a window with a handful of samples changes nothing', () => {
    const { clock, pace } = make();
    for (let k = 0; k < 3; k++) windowOf(clock, pace, 50, 0.5);
    const r = pace.rate();
    windowOf(clock, pace, 2, 100);
    assert.equal(pace.decision(), 'few-samples');
    assert.equal(pace.rate(), r);
  });

  it('never more than twice what the copies achieved, never below the floor', () => {
    const { clock, pace } = make({ min: 10 * MiB, cap: 0 });
    for (let k = 0; k < 10; k++) windowOf(clock, pace, 0, 0, 20 * MiB); // 100 MiB/s achieved
    assert.equal(pace.rate(), 200 * MiB);
    windowOf(clock, pace, 0, 0, 1024);
    assert.equal(pace.rate(), 10 * MiB);
  });

  it('follows policy changes: a lowered cap or a raised floor applies at once', () => {
    const { clock, pace, lim } = make({ min: 10 * MiB, cap: 0 });
    for (let k = 0; k < 6; k++) windowOf(clock, pace, 0, 0);
    lim.cap = 30 * MiB;
    assert.equal(pace.rate(), 30 * MiB);
    lim.cap = 0;
    lim.min = 50 * MiB;
    pace.start();
    assert.equal(pace.rate(), 50 * MiB);
    lim.cap = 20 * MiB; // a floor above the cap: the cap wins
    assert.equal(pace.rate(), 20 * MiB);
  });

  it('stays within [floor, cap] under random latency and idle windows', () => {
    const { clock, pace } = make({ min: 5 * MiB, cap: 300 * MiB });
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let k = 0; k < 500; k++) {
      const r = windowOf(clock, pace, Math.floor(rnd() * 60), rnd() * 20, Math.floor(rnd() * 100 * MiB));
      assert.ok(r >= 5 * MiB && r <= 300 * MiB, `rate ${r}`);
    }
  });
});
