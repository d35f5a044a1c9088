// DST wire v2: every frame round-trips, every bad header is refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  Cmd, Op, Flag, HEADER_SIZE, FrameDecoder, encodeFrame, encodeHeader, decodeHeader,
  encodeHello, decodeHello, encodeHelloReply, decodeHelloReply, encodeRefusal, decodeRefusal,
  encodeAuth, decodeAuth, WIRE_MAGIC, Feature, opAnswersWithData, opName,
} from '../../src/protocol/wire.js';

const sampleHeader = {
  cmd: Cmd.IO, op: Op.WRITE, flags: Flag.FUA | Flag.REPLAY, status: 0, length: 4096,
  id: 2 ** 40 + 7, offset: 2 ** 45 + 512, ackedBelow: 2 ** 40, payloadLength: 4096, tagLength: 16,
};

test('header round-trips every field, 48 bytes, big-endian magic first', () => {
  const buf = encodeHeader(sampleHeader);
  assert.equal(buf.length, HEADER_SIZE);
  assert.equal(buf.readUInt32BE(0), WIRE_MAGIC);
  assert.deepEqual(decodeHeader(buf), { ...sampleHeader, header: buf, payload: Buffer.alloc(0), tag: Buffer.alloc(0) });
});

test('bad magic, version, command, reserved, oversize payload and tag are refused by name', () => {
  const cases: [number, (b: Buffer) => void, RegExp][] = [
    [0, (b) => b.writeUInt32BE(0x47455420, 0), /magic 0x47455420/],
    [4, (b) => b.writeUInt8(1, 4), /version 1/],
    [5, (b) => b.writeUInt8(99, 5), /unknown command 99/],
    [46, (b) => b.writeUInt16BE(1, 46), /reserved/],
    [40, (b) => b.writeUInt32BE(0xffffffff, 40), /payload of 4294967295 bytes/],
    [44, (b) => b.writeUInt16BE(65, 44), /tag of 65 bytes/],
    [16, (b) => b.writeUInt32BE(0xffffffff, 16), /id exceeds/],
  ];
  for (const [, mutate, re] of cases) {
    const buf = encodeHeader(sampleHeader);
    mutate(buf);
    assert.throws(() => decodeHeader(buf), (e: Error & { code?: string }) => e.code === 'DST_ERR_BAD_FRAME' && re.test(e.message));
  }
});

test('frames with payload and tag decode back, header bytes kept for authentication', () => {
  const payload = Buffer.alloc(1000, 0xab);
  const tag = Buffer.alloc(16, 0x5c);
  const parts = encodeFrame({ cmd: Cmd.IO_RESPONSE, op: Op.READ, id: 9, length: 1000, payload, tag, status: 0 });
  const dec = new FrameDecoder();
  dec.feed(Buffer.concat(parts));
  const f = dec.next();
  assert.ok(f);
  assert.equal(f.cmd, Cmd.IO_RESPONSE);
  assert.deepEqual(f.payload, payload);
  assert.deepEqual(f.tag, tag);
  assert.deepEqual(f.header, parts[0]);
  assert.equal(dec.next(), null);
  assert.ok(dec.atBoundary);
});

test('decoder refuses a payload above its limit before buffering it', () => {
  const dec = new FrameDecoder(1024);
  dec.feed(encodeHeader({ ...sampleHeader, payloadLength: 2048, tagLength: 0 }));
  assert.throws(() => dec.next(), /exceeds the limit of 1024/);
});

test('HELLO, HELLO_REPLY, refusal and AUTH payloads round-trip', () => {
  const hello = {
    version: 2, exportName: 'vol', sessionId: Buffer.alloc(16, 1), access: 3, suite: 'aes-gcm',
    keyId: Buffer.alloc(8, 2), nonce: Buffer.alloc(32, 3),
  };
  assert.deepEqual(decodeHello(encodeHello(hello)), { ...hello, mirrorClaim: null });
  assert.deepEqual(decodeHello(encodeHello({ ...hello, keyId: null })), { ...hello, keyId: null, mirrorClaim: null });
  const reply = {
    identity: Buffer.alloc(16, 4), size: 2 ** 40, blockSize: 4096, maxRequest: 1 << 20, granted: 1,
    suite: 'none', nonce: Buffer.alloc(32, 5), message: null, instance: null, features: 0,
  };
  assert.deepEqual(decodeHelloReply(encodeHelloReply(reply)), reply);
  // the instance id (new per export start) is optional: older exports do not send it
  const withInstance = { ...reply, instance: Buffer.alloc(16, 7) };
  assert.deepEqual(decodeHelloReply(encodeHelloReply(withInstance)), withInstance);
  const shortInstance = Buffer.concat([encodeHelloReply(reply), Buffer.from([0, 9, 0, 2, 1, 2])]);
  assert.throws(() => decodeHelloReply(shortInstance), /instance is 2 bytes, expected 16/);
  // FEATURES (field 10, a u32: bit 31 too) is optional: absent means none, as from an export that predates it
  const withFeatures = { ...withInstance, features: Feature.DIGEST + 0x8000_0000 };
  assert.deepEqual(decodeHelloReply(encodeHelloReply(withFeatures)), withFeatures);
  assert.ok(!encodeHelloReply(reply).includes(Buffer.from([0, 10, 0, 4])), 'features 0 sends no field');
  const shortFeatures = Buffer.concat([encodeHelloReply(reply), Buffer.from([0, 10, 0, 1, 1])]);
  assert.throws(() => decodeHelloReply(shortFeatures), /features is 1 bytes, expected 4/);
  assert.equal(decodeRefusal(encodeRefusal('address 10.0.0.1 is not allowed')), 'address 10.0.0.1 is not allowed');
  assert.deepEqual(decodeAuth(encodeAuth({ proof: Buffer.alloc(32, 6) })), { proof: Buffer.alloc(32, 6) });
});

test('HELLO fields: unknown types are skipped, missing or malformed ones named', () => {
  const hello = encodeHello({ version: 2, exportName: '', sessionId: Buffer.alloc(16), access: 1, suite: 'none', keyId: null, nonce: Buffer.alloc(32) });
  const unknown = Buffer.from([0x7f, 0x00, 0x00, 0x02, 0xde, 0xad]);
  assert.equal(decodeHello(Buffer.concat([hello, unknown])).suite, 'none');
  assert.throws(() => decodeHello(hello.subarray(0, hello.length - 1)), /runs past the payload/);
  assert.throws(() => decodeHello(Buffer.alloc(0)), /version missing/);
  const shortSession = Buffer.concat([hello.subarray(0, 9), Buffer.from([0, 3, 0, 2, 1, 2])]);
  assert.throws(() => decodeHello(shortSession), /session id is 2 bytes/);
});

test('BLOCK_STATUS is op 6, DIGEST op 7; READ, BLOCK_STATUS and DIGEST are the ops that answer with data', () => {
  assert.equal(Op.BLOCK_STATUS, 6);
  assert.equal(Op.DIGEST, 7);
  assert.equal(opName(8), 'op#8');
  assert.deepEqual([Feature.DIGEST, Feature.MIRROR_CLAIM, Feature.BLOCK_STATUS, Feature.ZERO_FLAGS], [0x01, 0x02, 0x04, 0x08]);
  assert.deepEqual([Flag.NO_HOLE, Flag.FAST_ZERO], [0x04, 0x08]);
  const answering = Object.values(Op).filter((v): v is Op => typeof v === 'number' && opAnswersWithData(v));
  assert.deepEqual(answering, [Op.READ, Op.BLOCK_STATUS, Op.DIGEST]);
  const parts = encodeFrame({ cmd: Cmd.IO, op: Op.DIGEST, id: 3, offset: 2 ** 33, length: 32 << 20 });
  assert.equal(parts.length, 1, 'a DIGEST request has no payload');
  const h = decodeHeader(parts[0]!);
  assert.equal(h.op, Op.DIGEST);
  assert.equal(h.length, 32 << 20);
  assert.equal(h.offset, 2 ** 33);
  assert.equal(h.payloadLength, 0);
});

test('property: any HELLO_REPLY features (u32) and instance round-trip, whatever the order of the fields', () => {
  fc.assert(fc.property(fc.nat({ max: 0xffff_ffff }), fc.option(fc.uint8Array({ minLength: 16, maxLength: 16 })), (features, inst) => {
    const reply = {
      identity: Buffer.alloc(16, 4), size: 4096, blockSize: 4096, maxRequest: 1 << 20, granted: 3,
      suite: 'none', nonce: Buffer.alloc(32, 5), message: null, instance: inst === null ? null : Buffer.from(inst), features,
    };
    const bytes = encodeHelloReply(reply);
    assert.deepEqual(decodeHelloReply(bytes), reply);
    // fields may come in any order: the reversed sequence decodes the same
    const fields: Buffer[] = [];
    for (let off = 0; off < bytes.length; off += 4 + bytes.readUInt16BE(off + 2)) fields.push(bytes.subarray(off, off + 4 + bytes.readUInt16BE(off + 2)));
    assert.deepEqual(decodeHelloReply(Buffer.concat(fields.reverse())), reply);
  }), { numRuns: 200 });
});
