// Stream framer: any split of a message stream yields the same messages; bad nlmsg_len rejected.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isDstError } from '../../src/util/errors.js';
import { formatAttr, formatGenlMessage, formatNlMsgHeader } from '../../src/netlink/codec.js';
import { DST_FAMILY_ID } from '../../src/netlink/family.js';
import { NlFramer } from '../../src/netlink/framer.js';

const message = fc.record({
  seq: fc.nat({ max: 0xffffffff }),
  cmd: fc.integer({ min: 1, max: 255 }),
  attrs: fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }),
}).map(({ seq, cmd, attrs }) => formatGenlMessage({
  type: DST_FAMILY_ID, flags: 1, seq, cmd, attrs: attrs.map((a, i) => formatAttr(i + 1, Buffer.from(a))),
}));

/** Split `buf` at the given (sorted, deduplicated) cut points. */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

test('any split of a message stream yields the same messages, in order', () => {
  fc.assert(fc.property(fc.array(message, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 40 }), (msgs, cuts) => {
    const stream = Buffer.concat(msgs);
    const f = new NlFramer();
    const got: Buffer[] = [];
    for (const chunk of split(stream, cuts)) got.push(...f.push(chunk));
    assert.equal(got.length, msgs.length);
    got.forEach((m, i) => assert.ok(m.equals(msgs[i]!)));
    assert.equal(f.pending, 0);
  }), { numRuns: 500 });
});

test('byte-at-a-time delivery works and pending counts the partial message', () => {
  const m = formatGenlMessage({ type: DST_FAMILY_ID, flags: 1, seq: 1, cmd: 2, attrs: formatAttr(1, Buffer.from('hello\0')) });
  const f = new NlFramer();
  for (let i = 0; i < m.length - 1; i++) {
    assert.deepEqual(f.push(m.subarray(i, i + 1)), []);
    assert.equal(f.pending, i + 1);
  }
  const [out] = f.push(m.subarray(m.length - 1));
  assert.ok(out!.equals(m));
  assert.equal(f.pending, 0);
});

test('nlmsg_len < 20 is rejected as soon as its 4 bytes arrive', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 19 }), fc.integer({ min: 4, max: 20 }), (len, have) => {
    const h = formatNlMsgHeader({ len, type: DST_FAMILY_ID, flags: 1, seq: 1, pid: 0 });
    const f = new NlFramer();
    assert.throws(() => f.push(Buffer.concat([h, Buffer.alloc(4)]).subarray(0, have)),
      (e) => isDstError(e, 'DST_ERR_BAD_FRAME') && /too short: nlmsg_len/.test((e as Error).message));
    // the framer stays failed
    assert.throws(() => f.push(Buffer.alloc(0)), (e) => isDstError(e, 'DST_ERR_BAD_FRAME'));
  }));
});

test('oversized nlmsg_len is rejected before buffering the body (bounded memory)', () => {
  fc.assert(fc.property(fc.integer({ min: 1025, max: 0xffffffff }), (len) => {
    const f = new NlFramer(1024);
    const h = formatNlMsgHeader({ len, type: DST_FAMILY_ID, flags: 1, seq: 1, pid: 0 });
    assert.throws(() => f.push(h), (e) => isDstError(e, 'DST_ERR_BAD_FRAME') && (e as { errno: string }).errno === 'EMSGSIZE' && /too large/.test((e as Error).message));
  }));
  // default limit: 1 MiB exactly is fine, one more byte is not
  const f = new NlFramer();
  assert.deepEqual(f.push(formatNlMsgHeader({ len: 1024 * 1024, type: DST_FAMILY_ID, flags: 1, seq: 1, pid: 0 })), []);
  assert.throws(() => new NlFramer().push(formatNlMsgHeader({ len: 1024 * 1024 + 1, type: DST_FAMILY_ID, flags: 1, seq: 1, pid: 0 })), /too large/);
});

test('messages before a bad nlmsg_len in the same chunk are returned; the failure is then reported', () => {
  const good = formatGenlMessage({ type: DST_FAMILY_ID, flags: 1, seq: 1, cmd: 2, attrs: [] });
  const f = new NlFramer();
  const out = f.push(Buffer.concat([good, good, formatNlMsgHeader({ len: 3, type: 0, flags: 0, seq: 0, pid: 0 })]));
  assert.equal(out.length, 2);
  assert.ok(isDstError(f.failure, 'DST_ERR_BAD_FRAME'));
  assert.throws(() => f.push(good), /too short/);
});

test('valid messages before a bad one in separate chunks are delivered', () => {
  const good = formatGenlMessage({ type: DST_FAMILY_ID, flags: 1, seq: 1, cmd: 2, attrs: [] });
  const f = new NlFramer();
  assert.equal(f.push(good).length, 1);
  assert.throws(() => f.push(formatNlMsgHeader({ len: 8, type: 0, flags: 0, seq: 0, pid: 0 })), /too short/);
  assert.equal(f.partialHeader().readUInt32LE(0), 8);
});
