// src/engine/heap.ts reaches V8's collector through --expose-gc set at run time: if a Node
// upgrade refuses the flag or stops making gc() reachable that way, an unreachable object is no
// longer collected on demand (and an export's RSS stays up after large requests): this fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { heapText, v8Gc } from '../../src/engine/heap.js';

test('the exposed full collection frees an unreachable object at once, and status says it is active', async () => {
  const gc = v8Gc();
  assert.ok(gc !== null, 'V8 refused --expose-gc: heap.ts cannot collect on demand');
  const ref = new WeakRef({ payload: Buffer.alloc(1024) });
  await turn(); // a WeakRef keeps its target alive until the end of the job that made it
  gc();
  assert.equal(ref.deref(), undefined, 'the object outlived a full collection');
  assert.match(heapText(), /^full GC \+ /);
});
