// fast-check: NbdServerDecoder yields the same messages however the byte stream is split;
// bad magic is always rejected; an oversize WRITE is rejected from its header, before any payload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DstError } from '../../src/util/errors.js';
import { Cmd, REQUEST_HEADER_SIZE, OPTION_HEADER_SIZE } from '../../src/protocol/nbd.js';
import { NbdServerDecoder, type NbdMessage, type NbdPhase } from '../../src/protocol/nbd-decoder.js';
import { encodeClientFlags, encodeOption } from '../../src/protocol/nbd-options.js';
import { encodeRequest } from '../../src/protocol/nbd-replies.js';

const MAX_P = 4096; // small payload bound so the property runs fast

const optionArb = fc.record({
  option: fc.integer({ min: 0, max: 0xffffffff }),
  data: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
});

const requestArb = fc.record({
  flags: fc.integer({ min: 0, max: 0xffff }),
  type: fc.oneof(fc.constantFrom(Cmd.READ, Cmd.WRITE, Cmd.FLUSH, Cmd.TRIM, Cmd.WRITE_ZEROES, Cmd.DISC), fc.integer({ min: 0, max: 0xffff })),
  cookie: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((a) => Buffer.from(a)),
  offset: fc.bigInt({ min: 0n, max: 2n ** 53n - 1n }),
  length: fc.integer({ min: 0, max: MAX_P }),
  seed: fc.integer({ min: 0, max: 255 }),
}).map((r) => ({
  ...r,
  // non-WRITE lengths may be anything (no payload follows); WRITE carries exactly `length` bytes
  length: r.type === Cmd.WRITE ? r.length : r.length * 1000,
  payload: r.type === Cmd.WRITE ? Buffer.alloc(r.length, r.seed) : null,
}));

/** Split points (sorted, inside the stream) → chunks. */
function split(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) { out.push(stream.subarray(prev, p)); prev = p; }
  out.push(stream.subarray(prev));
  return out;
}

/** Feed chunks; pull after each one; move to transmission after `optionCount` options. */
function decodeAll(chunks: Buffer[], optionCount: number): NbdMessage[] {
  const d = new NbdServerDecoder({ maxPayload: MAX_P });
  const out: NbdMessage[] = [];
  let options = 0;
  const drain = (): void => {
    for (let m = d.next(); m !== null; m = d.next()) {
      out.push(m);
      if (m.kind === 'option' && ++options === optionCount) d.phase = 'transmission' as NbdPhase;
    }
  };
  for (const c of chunks) { d.feed(Buffer.from(c)); drain(); }
  assert.equal(d.buffered, 0);
  return out;
}

test('option and request streams decode identically however they are split', () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 3 }), fc.array(optionArb, { minLength: 1, maxLength: 6 }), fc.array(requestArb, { maxLength: 12 }),
    fc.array(fc.nat(), { maxLength: 40 }),
    (cflags, options, requests, cuts) => {
      const stream = Buffer.concat([
        encodeClientFlags(cflags),
        ...options.map((o) => encodeOption(o.option, o.data)),
        ...requests.map((r) => encodeRequest(r)),
      ]);
      const whole = decodeAll([stream], options.length);
      const pieces = decodeAll(split(stream, cuts), options.length);
      const bytewise = decodeAll([...stream].map((b) => Buffer.from([b])), options.length);
      assert.equal(whole.length, 1 + options.length + requests.length);
      assert.deepEqual(whole[0], { kind: 'client-flags', flags: cflags });
      options.forEach((o, i) => assert.deepEqual(whole[1 + i], { kind: 'option', option: o.option, data: o.data }));
      requests.forEach((r, i) => assert.deepEqual(whole[1 + options.length + i], {
        kind: 'request', flags: r.flags, type: r.type, cookie: r.cookie, offset: Number(r.offset), length: r.length, payload: r.payload,
      }));
      assert.deepEqual(pieces, whole);
      assert.deepEqual(bytewise, whole);
    },
  ), { numRuns: 150 });
});

test('a corrupted request magic is always rejected', () => {
  fc.assert(fc.property(
    requestArb, fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 255 }), fc.array(fc.nat(), { maxLength: 10 }),
    (r, byte, xor, cuts) => {
      const bytes = encodeRequest(r);
      bytes[byte] ^= xor;
      const d = new NbdServerDecoder({ maxPayload: MAX_P });
      d.phase = 'transmission';
      let threw: unknown = null;
      try {
        for (const c of split(bytes, cuts)) { d.feed(c); while (d.next() !== null); }
      } catch (e) { threw = e; }
      assert.ok(threw instanceof DstError && threw.code === 'DST_ERR_BAD_FRAME', String(threw));
    },
  ), { numRuns: 200 });
});

test('a corrupted option magic is always rejected', () => {
  fc.assert(fc.property(optionArb, fc.integer({ min: 0, max: 7 }), fc.integer({ min: 1, max: 255 }), (o, byte, xor) => {
    const bytes = encodeOption(o.option, o.data);
    bytes[byte] ^= xor;
    const d = new NbdServerDecoder();
    d.phase = 'options';
    d.feed(bytes.subarray(0, OPTION_HEADER_SIZE));
    assert.throws(() => d.next(), (e: unknown) => e instanceof DstError && e.code === 'DST_ERR_BAD_FRAME');
  }), { numRuns: 100 });
});

test('an oversize WRITE is rejected as soon as its header is complete, before the payload', () => {
  fc.assert(fc.property(
    fc.integer({ min: MAX_P + 1, max: 0xffffffff }), fc.integer({ min: 1, max: REQUEST_HEADER_SIZE }),
    fc.array(requestArb, { maxLength: 3 }),
    (length, firstCut, before) => {
      const header = encodeRequest({ type: Cmd.WRITE, cookie: Buffer.alloc(8), offset: 0, length });
      const d = new NbdServerDecoder({ maxPayload: MAX_P });
      d.phase = 'transmission';
      for (const r of before) { d.feed(encodeRequest(r)); assert.notEqual(d.next(), null); }
      d.feed(header.subarray(0, firstCut));
      if (firstCut < REQUEST_HEADER_SIZE) {
        assert.equal(d.next(), null);
        d.feed(header.subarray(firstCut));
      }
      assert.throws(() => d.next(), (e: unknown) => e instanceof DstError && e.code === 'DST_ERR_BAD_FRAME');
      assert.equal(d.buffered, 0); // nothing of a payload was held
    },
  ), { numRuns: 150 });
});
