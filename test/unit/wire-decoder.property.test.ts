// Property: any stream of frames, split at any points, decodes to the same frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Cmd, Op, FrameDecoder, encodeFrame } from '../../src/protocol/wire.js';

const frameArb = fc.record({
  cmd: fc.constantFrom(Cmd.IO, Cmd.IO_RESPONSE, Cmd.PING, Cmd.PONG, Cmd.HELLO),
  op: fc.constantFrom(Op.NONE, Op.READ, Op.WRITE, Op.FLUSH, Op.DIGEST),
  flags: fc.integer({ min: 0, max: 3 }),
  status: fc.integer({ min: 0, max: 200 }),
  length: fc.integer({ min: 0, max: 1 << 20 }),
  id: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  offset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  ackedBelow: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  payload: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  tag: fc.uint8Array({ maxLength: 32 }).map((a) => Buffer.from(a)),
});

test('frames split anywhere decode identically', () => {
  fc.assert(fc.property(fc.array(frameArb, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (frames, cuts) => {
    const stream = Buffer.concat(frames.flatMap((f) => encodeFrame(f)));
    const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
    const dec = new FrameDecoder();
    const out = [];
    let prev = 0;
    for (const p of [...points, stream.length]) {
      dec.feed(stream.subarray(prev, p));
      prev = p;
      for (let f = dec.next(); f; f = dec.next()) out.push(f);
    }
    assert.equal(out.length, frames.length);
    out.forEach((got, i) => {
      const want = frames[i]!;
      for (const k of ['cmd', 'op', 'flags', 'status', 'length', 'id', 'offset', 'ackedBelow'] as const) assert.equal(got[k], want[k]);
      assert.deepEqual(got.payload, want.payload);
      assert.deepEqual(got.tag, want.tag);
    });
    assert.ok(dec.atBoundary);
  }), { numRuns: 300 });
});
