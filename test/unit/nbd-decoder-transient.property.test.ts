// fast-check: NbdServerDecoder fed through one reused read buffer (feedTransient / readTarget)
// yields what feed() of the whole stream yields, and every WRITE payload of POOL_MIN bytes or
// more is a payload-pool buffer of its own (one owner: releasing it recycles nothing else).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Cmd } from '../../src/protocol/nbd.js';
import { NbdServerDecoder, type NbdMessage } from '../../src/protocol/nbd-decoder.js';
import { encodeRequest } from '../../src/protocol/nbd-replies.js';
import { POOL_MIN, payloadPool } from '../../src/engine/io/payload-pool.js';
import { feedLikeSocket } from '../helpers/socket-feed.js';

const requestArb = fc.record({
  type: fc.constantFrom(Cmd.READ, Cmd.WRITE, Cmd.WRITE, Cmd.FLUSH, Cmd.TRIM),
  cookie: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((a) => Buffer.from(a)),
  offset: fc.integer({ min: 0, max: 2 ** 40 }),
  length: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(POOL_MIN - 1, POOL_MIN, POOL_MIN + 1, 20_000, 70_000)),
  seed: fc.integer({ min: 0, max: 255 }),
}).map((r) => ({ ...r, payload: r.type === Cmd.WRITE ? Buffer.alloc(r.length, r.seed) : null }));

function transmission(): NbdServerDecoder {
  const d = new NbdServerDecoder({ payloads: payloadPool });
  d.phase = 'transmission';
  return d;
}

/** Decode `stream` read like a socket into `scratch` (see feedLikeSocket). */
function decodeTransient(stream: Buffer, cuts: number[], scratch: Buffer, pulls: boolean[] = []): NbdMessage[] {
  const d = transmission();
  const got: NbdMessage[] = [];
  feedLikeSocket(d, stream, cuts, scratch, pulls, () => { for (let m = d.next(); m !== null; m = d.next()) got.push(m); });
  assert.equal(d.buffered, 0);
  return got;
}

const largeWrites = (ms: NbdMessage[]): Buffer[] =>
  ms.flatMap((m) => (m.kind === 'request' && m.payload !== null && m.payload.length >= POOL_MIN ? [m.payload] : []));

test('requests read into one reused buffer, pulled or not between reads, decode as fed whole; a pooled payload is never shared', () => {
  fc.assert(fc.property(fc.array(requestArb, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }),
    fc.integer({ min: 1, max: 70_000 }), fc.array(fc.boolean(), { maxLength: 30 }), (requests, cuts, bufSize, pulls) => {
      const stream = Buffer.concat(requests.map((r) => encodeRequest(r)));
      const whole = transmission();
      whole.feed(Buffer.from(stream));
      const want: NbdMessage[] = [];
      for (let m = whole.next(); m !== null; m = whole.next()) want.push(m);
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
      const got = decodeTransient(stream, points, Buffer.alloc(bufSize), pulls);
      assert.deepEqual(got, want);
      for (const p of largeWrites(got)) {
        if (p.buffer instanceof SharedArrayBuffer) assert.equal(p.byteOffset, 0, 'a pooled payload starts its own buffer');
      }
    }), { numRuns: 150 });
});

test('reads that end on request boundaries give every large WRITE payload a pooled buffer of its own', () => {
  fc.assert(fc.property(fc.array(requestArb, { minLength: 1, maxLength: 12 }), fc.array(fc.boolean(), { maxLength: 12 }),
    (requests, cutAfter) => {
      const encoded = requests.map((r) => encodeRequest(r));
      const stream = Buffer.concat(encoded);
      const cuts: number[] = [];
      let end = 0;
      encoded.forEach((e, i) => { end += e.length; if (cutAfter[i]) cuts.push(end); });
      const writes = largeWrites(decodeTransient(stream, cuts, Buffer.alloc(128 * 1024)));
      assert.equal(writes.length, requests.filter((r) => r.payload !== null && r.payload.length >= POOL_MIN).length);
      for (const p of writes) assert.ok(p.buffer instanceof SharedArrayBuffer && p.byteOffset === 0, `WRITE of ${p.length} bytes owns its buffer`);
    }), { numRuns: 100 });
});
