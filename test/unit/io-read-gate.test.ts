// ReadGate: a 'data'-event socket pauses at once; a user-buffer socket reads on until READ_AHEAD
// bytes are held (so a peer's close is still seen), then pauses; resume() only undoes a pause.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { READ_AHEAD, ReadGate } from '../../src/engine/io/read-gate.js';

function fakeSocket() {
  const calls: string[] = [];
  return { calls, pause: () => { calls.push('pause'); }, resume: () => { calls.push('resume'); } };
}

test("a socket with 'data' events is paused at once", () => {
  const s = fakeSocket();
  const g = new ReadGate(s, false, () => 0);
  g.pause();
  assert.deepEqual(s.calls, ['pause']);
  assert.equal(g.isPaused, true);
  g.resume();
  g.resume();
  assert.deepEqual(s.calls, ['pause', 'resume'], 'resume only undoes a pause');
});

test('a user-buffer socket reads on until READ_AHEAD bytes are held, then pauses', () => {
  const s = fakeSocket();
  let held = 0;
  const g = new ReadGate(s, true, () => held);
  g.pause();
  assert.deepEqual(s.calls, [], 'still reading: nothing held yet');
  held = READ_AHEAD - 1;
  g.afterRead();
  assert.deepEqual(s.calls, []);
  held = READ_AHEAD;
  g.afterRead();
  assert.deepEqual(s.calls, ['pause']);
  g.resume();
  held = 10 * READ_AHEAD;
  g.afterRead();
  assert.deepEqual(s.calls, ['pause', 'resume'], 'not paused: reads are not limited');
});
