// The meta-context option parser (NBD_OPT_LIST/SET_META_CONTEXT payload) under any input: what is
// encoded parses back; any truncation, any changed byte, any random payload either parses or is a
// clean DST_ERR_BAD_FRAME (the endpoint turns it into NBD_REP_ERR_INVALID), never another throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DstError } from '../../src/util/errors.js';
import { MAX_STRING } from '../../src/protocol/nbd.js';
import { encodeMetaContextRequest, parseMetaContextRequest } from '../../src/protocol/nbd-options.js';

const text = fc.string({ unit: 'grapheme-ascii', maxLength: 40 });
const request = fc.record({ name: text, queries: fc.array(text, { maxLength: 8 }) });

function parsesOrRefuses(b: Buffer): void {
  try {
    const r = parseMetaContextRequest(b);
    // (a changed byte may be invalid UTF-8: compare lengths in UTF-16 units, where it is one U+FFFD)
    assert.ok(r.name.length <= MAX_STRING && r.queries.every((q) => q.length <= MAX_STRING));
    assert.ok(8 + 4 * r.queries.length <= b.length, 'no more queries than the payload holds');
  } catch (err) {
    assert.ok(err instanceof DstError && err.code === 'DST_ERR_BAD_FRAME', String(err));
  }
}

test('meta context request: encode → parse is the identity', () => {
  fc.assert(fc.property(request, ({ name, queries }) => {
    assert.deepEqual(parseMetaContextRequest(encodeMetaContextRequest(name, queries)), { name, queries });
  }));
});

test('meta context request: every truncation of a valid payload is refused cleanly', () => {
  fc.assert(fc.property(request, fc.nat(), ({ name, queries }, cut) => {
    const whole = encodeMetaContextRequest(name, queries);
    const n = cut % whole.length; // strictly shorter
    assert.throws(() => parseMetaContextRequest(whole.subarray(0, n)), (e: unknown) => e instanceof DstError && e.code === 'DST_ERR_BAD_FRAME');
  }));
});

test('meta context request: a changed byte, appended bytes or random bytes parse or are refused cleanly', () => {
  fc.assert(fc.property(request, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 8 }),
    ({ name, queries }, at, byte, tail) => {
      const b = Buffer.concat([encodeMetaContextRequest(name, queries), tail]);
      b[at % b.length] = byte;
      parsesOrRefuses(b);
    }));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => parsesOrRefuses(Buffer.from(bytes))));
});
