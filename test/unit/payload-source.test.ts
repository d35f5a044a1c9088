// The decoders keep only buffers from the PayloadSource their owner gives them (the codec holds no
// pool of its own): a large payload is the very buffer the source lent, and a decoder given no
// source never hands out a payload-pool buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, FrameDecoder, MAX_PAYLOAD, Op, encodeFrame, type Frame } from '../../src/protocol/wire.js';
import { Cmd as NbdCmd } from '../../src/protocol/nbd.js';
import { NbdServerDecoder, type NbdMessage } from '../../src/protocol/nbd-decoder.js';
import { encodeRequest } from '../../src/protocol/nbd-replies.js';
import type { PayloadSource } from '../../src/protocol/stream-buffer.js';
import { blockContent } from '../helpers/blocks.js';

interface CountingSource extends PayloadSource {
  readonly lent: Set<Buffer>;
  copies: number;
}

function countingSource(): CountingSource {
  const s: CountingSource = {
    min: 4096,
    lent: new Set(),
    copies: 0,
    alloc(n) { const b = Buffer.allocUnsafe(n); s.lent.add(b); return b; },
    copy(src, start, end) { s.copies++; return Buffer.from(src.subarray(start, end)); },
  };
  return s;
}

const blocks = [blockContent(1, 1, 8192), blockContent(2, 1, 8192), blockContent(3, 1, 8192)];
const frameStream = (): Buffer => Buffer.concat(blocks.flatMap((payload, i) => encodeFrame({ cmd: Cmd.IO, op: Op.WRITE, id: i, length: payload.length, payload })));
const nbdStream = (): Buffer => Buffer.concat(blocks.map((payload, i) => encodeRequest({ type: NbdCmd.WRITE, cookie: BigInt(i), offset: 0, length: payload.length, payload })));

function pullFrames(dec: FrameDecoder, out: Frame[]): void {
  for (let f = dec.next(); f !== null; f = dec.next()) out.push(f);
}

function pullWrites(dec: NbdServerDecoder, out: Buffer[]): void {
  for (let m: NbdMessage | null = dec.next(); m !== null; m = dec.next()) if (m.kind === 'request' && m.payload !== null) out.push(m.payload);
}

function transmission(payloads?: PayloadSource): NbdServerDecoder {
  const d = new NbdServerDecoder(payloads === undefined ? {} : { payloads });
  d.phase = 'transmission';
  return d;
}

test('frames: payloads assembled across chunks, or split off a transient read, are the buffers the source lent', () => {
  const stream = frameStream();
  const source = countingSource();
  const dec = new FrameDecoder(MAX_PAYLOAD, source);
  const frames: Frame[] = [];
  for (let at = 0; at < stream.length; at += 1000) {
    dec.feed(stream.subarray(at, at + 1000));
    pullFrames(dec, frames);
  }
  const read = Buffer.alloc(stream.length);
  stream.copy(read);
  dec.feedTransient(read); // three whole frames in one reused read buffer
  read.fill(0);
  pullFrames(dec, frames);
  assert.equal(frames.length, 2 * blocks.length);
  frames.forEach((f, i) => {
    assert.ok(f.payload.equals(blocks[i % blocks.length]!), `payload of frame ${i}`);
    assert.ok(source.lent.has(f.payload), `frame ${i}'s payload is a buffer the source lent`);
  });
  assert.ok(source.copies > 0, 'the headers of a transient read are kept through the source');
});

test('NBD WRITE payloads assembled across chunks are the buffers the source lent', () => {
  const stream = nbdStream();
  const source = countingSource();
  const dec = transmission(source);
  const writes: Buffer[] = [];
  for (let at = 0; at < stream.length; at += 1000) {
    dec.feed(stream.subarray(at, at + 1000));
    pullWrites(dec, writes);
  }
  assert.equal(writes.length, blocks.length);
  writes.forEach((w, i) => {
    assert.ok(w.equals(blocks[i]!), `payload of WRITE ${i}`);
    assert.ok(source.lent.has(w), `WRITE ${i}'s payload is a buffer the source lent`);
  });
});

test('decoders given no source never hand out a payload-pool buffer', () => {
  const frames: Frame[] = [];
  const fdec = new FrameDecoder();
  const writes: Buffer[] = [];
  const ndec = transmission();
  for (const [stream, feed] of [[frameStream(), (c: Buffer) => { fdec.feed(c); pullFrames(fdec, frames); }],
    [nbdStream(), (c: Buffer) => { ndec.feed(c); pullWrites(ndec, writes); }]] as const) {
    for (let at = 0; at < stream.length; at += 1000) feed(stream.subarray(at, at + 1000));
  }
  const payloads = [...frames.map((f) => f.payload), ...writes];
  assert.equal(payloads.length, 2 * blocks.length);
  for (const p of payloads) assert.ok(!(p.buffer instanceof SharedArrayBuffer), 'a plain buffer, not one from the engine\'s pool');
});
