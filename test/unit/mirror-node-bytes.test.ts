// A multi-leg node's bytes in node show are what its NBD clients read and wrote, not the legs'
// added up: a mirror writes each byte to every leg (and resync copies more), which the legs count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sumStats } from '../../src/engine/remote/multi-show.js';
import { emptyStats } from '../../src/engine/types.js';

test('multi-leg stats: bytes from the NBD side, the rest from the legs', () => {
  const leg = { ...emptyStats(), completed: 10, resends: 1, reconnects: 2, bytesRead: 8192, bytesWritten: 40960 };
  const s = sumStats([leg, { ...leg, bytesRead: 0 }], 3, { bytesRead: 4096, bytesWritten: 16384 });
  assert.deepEqual([s.bytesRead, s.bytesWritten], [4096, 16384]);
  assert.deepEqual([s.completed, s.resends, s.reconnects, s.inflight], [20, 2, 4, 3]);
});
