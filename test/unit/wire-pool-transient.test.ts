// In-place payload assembly in pooled buffers, and the transient-chunk decoder path
// (feedTransient / readTarget: socket reads into one reused buffer or straight into a payload).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Cmd, Op, FrameDecoder, MAX_PAYLOAD, encodeFrame, type Frame } from '../../src/protocol/wire.js';
import { POOL_MIN, payloadPool } from '../../src/engine/io/payload-pool.js';
import { feedLikeSocket } from '../helpers/socket-feed.js';

const frameArb = fc.record({
  cmd: fc.constantFrom(Cmd.IO, Cmd.IO_RESPONSE, Cmd.PING),
  op: fc.constantFrom(Op.NONE, Op.READ, Op.WRITE),
  id: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  offset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  // small payloads, and large ones (pooled, assembled in place) of a few sizes
  payload: fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc.tuple(fc.constantFrom(POOL_MIN, POOL_MIN + 1, 3 * POOL_MIN + 17), fc.integer({ min: 0, max: 255 }))
      .map(([n, seed]) => Buffer.alloc(n, seed)),
  ),
  tag: fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a)),
});

function check(got: Frame[], want: { cmd: number; op: number; id: number; offset: number; payload: Buffer; tag: Buffer }[]): void {
  assert.equal(got.length, want.length);
  got.forEach((g, i) => {
    const w = want[i]!;
    assert.equal(g.cmd, w.cmd);
    assert.equal(g.op, w.op);
    assert.equal(g.id, w.id);
    assert.equal(g.offset, w.offset);
    assert.equal(g.payload.length, w.payload.length);
    assert.ok(g.payload.equals(w.payload), `payload of frame ${i}`);
    assert.ok(g.tag.equals(w.tag), `tag of frame ${i}`);
  });
}

test('transient chunks (one reused buffer, scribbled over after each feed), pulled or not between reads, decode identically', () => {
  fc.assert(fc.property(fc.array(frameArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 20 }),
    fc.integer({ min: 1, max: 70_000 }), fc.array(fc.boolean(), { maxLength: 30 }), (frames, cuts, bufSize, pulls) => {
      const stream = Buffer.concat(frames.flatMap((f) => encodeFrame(f)));
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
      const dec = new FrameDecoder(MAX_PAYLOAD, payloadPool);
      const out: Frame[] = [];
      feedLikeSocket(dec, stream, points, Buffer.alloc(bufSize), pulls, () => { for (let f = dec.next(); f; f = dec.next()) out.push(f); });
      for (const f of out) {
        if (f.payload.length >= POOL_MIN && f.payload.buffer instanceof SharedArrayBuffer) assert.equal(f.payload.byteOffset, 0, 'a pooled payload starts its own buffer');
      }
      check(out, frames);
      assert.ok(dec.atBoundary);
      assert.equal(dec.pendingBytes, 0);
    }), { numRuns: 150 });
});

test('a large payload is read straight into its buffer: readTarget hands out its unfilled rest', () => {
  const payload = Buffer.alloc(256 * 1024, 7);
  const stream = Buffer.concat(encodeFrame({ cmd: Cmd.IO_RESPONSE, op: Op.READ, id: 5, payload }));
  const scratch = Buffer.alloc(1000);
  const dec = new FrameDecoder(MAX_PAYLOAD, payloadPool);
  stream.copy(scratch, 0, 0, 1000);
  dec.feedTransient(scratch.subarray(0, 1000));
  const target = dec.readTarget(scratch);
  assert.notEqual(target, scratch);
  assert.equal(target.length, stream.length - 1000);
  stream.copy(target, 0, 1000);
  dec.feedTransient(target);
  const f = dec.next()!;
  assert.ok(f.payload.equals(payload));
  assert.equal(f.payload.buffer, target.buffer, 'no copy: the payload is the buffer the socket read into');
  assert.equal(dec.next(), null);
  assert.ok(dec.atBoundary);
});

test('feed(): a payload spanning chunks is assembled once, in a pooled buffer', () => {
  const payload = Buffer.alloc(2 * POOL_MIN + 3, 9);
  const stream = Buffer.concat(encodeFrame({ cmd: Cmd.IO, op: Op.WRITE, id: 1, payload }));
  const dec = new FrameDecoder(MAX_PAYLOAD, payloadPool);
  for (let i = 0; i < stream.length; i += 1000) {
    dec.feed(stream.subarray(i, i + 1000));
    if (i + 1000 < stream.length) assert.equal(dec.next(), null);
  }
  const f = dec.next()!;
  assert.ok(f.payload.equals(payload));
  assert.equal(dec.pendingBytes, 0);
});
