// An export node's counters (stats.ts): calls in flight with the oldest's age and the peak,
// answers and failures, bytes moved, replays and reconnects; the node hears of each call's end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../src/util/clock.js';
import { Op } from '../../src/protocol/wire.js';
import { ExportStats } from '../../src/engine/export/stats.js';

test('export stats: calls in flight, the oldest\'s age, the peak, and what was answered', () => {
  const clock = new FakeClock();
  let ended = 0;
  const s = new ExportStats(clock, () => { ended++; });
  assert.equal(s.snapshot().oldestInflightMs, null);
  const a = s.beginCall();
  clock.advance(30);
  const b = s.beginCall();
  clock.advance(10);
  assert.equal(s.inflight, 2);
  assert.equal(s.snapshot().oldestInflightMs, 40);
  s.endCall(a, Op.WRITE, 4096, 0);
  assert.equal(s.snapshot().oldestInflightMs, 10, 'the oldest left: the next one is');
  s.endCall(b, Op.READ, 0, 5);
  s.answered(Op.WRITE, 22); // refused without a backend call
  s.replayed();
  s.reconnected();
  assert.equal(ended, 2);
  assert.deepEqual(s.snapshot(), {
    inflight: 0, inflightPeak: 2, completed: 3, resends: 0, replayed: 1, failed: 2, reconnects: 1,
    bytesRead: 0, bytesWritten: 4096, oldestInflightMs: null,
  });
});
