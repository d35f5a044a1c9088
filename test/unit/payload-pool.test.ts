// The payload pool: what it lends comes back only through releasePayload(), once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocPayload, releasePayload, pooledBytes, POOL_MIN } from '../../src/engine/io/payload-pool.js';

test('payload pool: released buffers are reused; foreign, double and small releases are no-ops', () => {
  const a = allocPayload(POOL_MIN * 2);
  assert.equal(a.length, POOL_MIN * 2);
  const before = pooledBytes();
  releasePayload(a);
  assert.equal(pooledBytes(), before + a.buffer.byteLength);
  releasePayload(a); // twice: no-op
  assert.equal(pooledBytes(), before + a.buffer.byteLength);
  const b = allocPayload(POOL_MIN * 2);
  assert.equal(b.buffer, a.buffer, 'the released buffer is lent again');
  assert.equal(pooledBytes(), before);
  releasePayload(Buffer.alloc(POOL_MIN * 2)); // not lent by the pool
  releasePayload(null);
  assert.equal(pooledBytes(), before);
  const small = allocPayload(100);
  releasePayload(small);
  assert.equal(pooledBytes(), before);
  // a size between classes gets a buffer of the next class, trimmed to the asked length
  const odd = allocPayload(POOL_MIN * 5 + 1);
  assert.equal(odd.length, POOL_MIN * 5 + 1);
  assert.ok(odd.buffer.byteLength >= odd.length && odd.buffer.byteLength <= odd.length * 1.25 + POOL_MIN);
  releasePayload(b);
  releasePayload(odd);
});
