// The sealed channel's ordered queues: frames finished by the crypto pool out of order are still
// written in sequence order; received frames are delivered in arrival order, only once opened;
// a reordered, replayed, altered, cut or foreign frame stops the channel at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SealedChannel, NO_KEYS, type FrameCrypto } from '../../src/engine/channel.js';
import {
  deriveSessionKeys, open, seal, suiteByName, type DirectionKeys, type Sealed, type Suite,
} from '../../src/protocol/suites.js';
import { Cmd, FrameDecoder, Op, type Frame, type FrameInit } from '../../src/protocol/wire.js';

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A crypto pool whose jobs finish when the test says so, in any order. */
class ManualCrypto implements FrameCrypto {
  readonly jobs: { kind: 'seal' | 'open'; seq: number; run: () => void; fail: (e: Error) => void }[] = [];
  seal(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, plain: Buffer): Promise<Sealed> {
    const copy = Buffer.from(plain);
    return new Promise((resolve, reject) => {
      this.jobs.push({ kind: 'seal', seq, run: () => resolve(seal(suite, keys, seq, header, copy)), fail: reject });
    });
  }
  open(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, payload: Buffer, tag: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.jobs.push({
        kind: 'open', seq, fail: reject,
        run: () => { try { resolve(open(suite, keys, seq, header, payload, tag)); } catch (e) { reject(e); } },
      });
    });
  }
  /** finish the queued jobs in this order of their seq */
  finish(order: number[]): void {
    for (const seq of order) {
      const i = this.jobs.findIndex((j) => j.seq === seq);
      assert.ok(i >= 0, `job ${seq} queued`);
      this.jobs.splice(i, 1)[0]!.run();
    }
  }
}

function pair(name: string) {
  const suite = suiteByName(name);
  const keys = suite.needsKey ? deriveSessionKeys(suite, randomBytes(32), randomBytes(32), randomBytes(32)) : null;
  return { suite, tx: keys?.clientToServer ?? NO_KEYS, keysOther: keys?.serverToClient ?? NO_KEYS };
}

interface Harness {
  ch: SealedChannel;
  wire: Buffer[];
  delivered: Frame[];
  failures: string[];
}

function channel(suite: Suite, tx: DirectionKeys, rx: DirectionKeys, crypto: FrameCrypto | null, inlineBelow?: number): Harness {
  const h: Harness = { ch: null as unknown as SealedChannel, wire: [], delivered: [], failures: [] };
  h.ch = new SealedChannel({
    suite, tx, rx, crypto,
    write: (parts) => { h.wire.push(Buffer.concat(parts)); },
    deliver: (f) => { h.delivered.push(f); },
    fail: (reason) => { h.failures.push(reason); },
    ...(inlineBelow !== undefined ? { inlineBelow } : {}),
  });
  return h;
}

/** Split what a channel wrote into frames. */
function frames(wire: Buffer[]): Frame[] {
  const dec = new FrameDecoder();
  for (const b of wire) dec.feed(b);
  const out: Frame[] = [];
  for (let f = dec.next(); f; f = dec.next()) out.push(f);
  return out;
}

const io = (id: number, len: number): FrameInit => ({
  cmd: Cmd.IO, op: Op.WRITE, id, offset: id * 4096, length: len, payload: Buffer.alloc(len, id & 0xff),
});

test('sending: out-of-order pool completion is written in sequence order; inline frames wait their turn', async () => {
  const { suite, tx } = pair('aes-gcm');
  const crypto = new ManualCrypto();
  const s = channel(suite, tx, NO_KEYS, crypto, 1024); // frames of ≥ 1 KiB go to the "pool"
  s.ch.send(io(1, 4096)); // seq 0 → pool
  s.ch.send(io(2, 8192)); // seq 1 → pool
  s.ch.send(io(3, 10));   // seq 2 → inline, but must wait for 0 and 1
  s.ch.send(io(4, 2048)); // seq 3 → pool
  assert.equal(s.wire.length, 0);
  assert.equal(s.ch.pendingOut, 4);
  assert.equal(s.ch.pendingOutBytes, 4096 + 8192 + 10 + 2048);
  assert.equal(s.ch.sendSeq, 4);
  let flushed = false;
  s.ch.whenFlushed(() => { flushed = true; });
  crypto.finish([3, 1]);
  await flush();
  assert.equal(s.wire.length, 0, 'nothing before frame 0');
  crypto.finish([0]);
  await flush();
  assert.equal(s.wire.length, 4, 'frame 0 releases 1, 2 and 3');
  assert.equal(s.ch.pendingOut, 0);
  assert.equal(s.ch.pendingOutBytes, 0);
  assert.equal(flushed, true);
  // the receiver (inline) opens them in order with seq 0..3
  const r = channel(suite, NO_KEYS, tx, null);
  for (const f of frames(s.wire)) r.ch.receive(f);
  assert.deepEqual(r.failures, []);
  assert.deepEqual(r.delivered.map((f) => [f.id, f.payload.length, f.payloadLength, f.tag.length]),
    [[1, 4096, 4096, 0], [2, 8192, 8192, 0], [3, 10, 10, 0], [4, 2048, 2048, 0]]);
  assert.ok(r.delivered.every((f) => f.payload.every((b) => b === (f.id & 0xff))));
});

test('sending: with nothing pending a small frame is written at once (no promise, no queue)', () => {
  const { suite, tx } = pair('chacha20-poly1305');
  const s = channel(suite, tx, NO_KEYS, new ManualCrypto());
  s.ch.send({ cmd: Cmd.PING, id: 9 });
  s.ch.send(io(1, 60 * 1024));
  assert.equal(s.wire.length, 2);
  const f = frames(s.wire);
  assert.deepEqual(f.map((x) => [x.cmd, x.tagLength]), [[Cmd.PING, 16], [Cmd.IO, 16]]);
});

test('sending: the owner gets its payload back only once the pool finished reading it', async () => {
  const { suite, tx } = pair('aes-gcm');
  const crypto = new ManualCrypto();
  const s = channel(suite, tx, NO_KEYS, crypto, 1024);
  let done = 0;
  s.ch.send({ cmd: Cmd.IO, op: Op.WRITE, id: 1, length: 4096, payload: Buffer.alloc(4096, 7) }, () => done++);
  await flush();
  assert.equal(done, 0, 'the worker may still be reading the payload');
  crypto.finish([0]);
  await flush();
  assert.equal(done, 1);
  assert.equal(s.wire.length, 1);
});

test('receiving: pool completion out of order is delivered in arrival order, only once opened', async () => {
  const { suite, tx } = pair('aes-cbc+hmac-sha256');
  const s = channel(suite, tx, NO_KEYS, null);
  for (let i = 1; i <= 4; i++) s.ch.send(io(i, i === 3 ? 16 : 4096));
  const crypto = new ManualCrypto();
  const r = channel(suite, NO_KEYS, tx, crypto, 1024);
  for (const f of frames(s.wire)) r.ch.receive(f);
  assert.equal(r.ch.receiveSeq, 4);
  assert.equal(r.ch.pendingIn, 4, 'frame 2 was opened inline but waits behind 0 and 1');
  assert.equal(r.delivered.length, 0);
  crypto.finish([1, 3]);
  await flush();
  assert.equal(r.delivered.length, 0);
  crypto.finish([0]);
  await flush();
  assert.deepEqual(r.delivered.map((f) => f.id), [1, 2, 3, 4]);
  assert.equal(r.ch.pendingIn, 0);
  assert.deepEqual(r.failures, []);
});

for (const name of ['aes-gcm', 'aes-ctr+hmac-sha512', 'none+hmac-blake2b512', 'none+sha256']) {
  test(`receiving (${name}): a replayed, reordered, altered, cut or foreign frame fails the channel; nothing after it`, async () => {
    const { suite, tx } = pair(name);
    const s = channel(suite, tx, NO_KEYS, null);
    for (let i = 1; i <= 3; i++) s.ch.send(io(i, 100));
    const [f0, f1, f2] = frames(s.wire);
    const fresh = (): SealedChannel & { h: Harness } => {
      const h = channel(suite, NO_KEYS, tx, null);
      return Object.assign(h.ch, { h });
    };
    const clone = (f: Frame): Frame => ({ ...f, header: Buffer.from(f.header), payload: Buffer.from(f.payload), tag: Buffer.from(f.tag) });

    // in order: fine
    const ok = fresh();
    for (const f of [f0!, f1!, f2!]) ok.receive(clone(f));
    assert.deepEqual(ok.h.delivered.map((f) => f.id), [1, 2, 3]);

    // replayed: frame 0 twice
    const rep = fresh();
    rep.receive(clone(f0!));
    rep.receive(clone(f0!));
    rep.receive(clone(f1!));
    assert.deepEqual(rep.h.delivered.map((f) => f.id), [1]);
    assert.equal(rep.h.failures.length, 1);
    assert.match(rep.h.failures[0]!, /frame 1 rejected/);
    assert.equal(rep.isClosed, true);

    // reordered: 1 before 0
    const ro = fresh();
    ro.receive(clone(f1!));
    ro.receive(clone(f0!));
    assert.equal(ro.h.delivered.length, 0);
    assert.equal(ro.h.failures.length, 1);

    // altered: one bit of the header (offset), the payload, the tag
    for (const part of ['header', 'payload', 'tag'] as const) {
      const alt = fresh();
      const f = clone(f0!);
      const buf = f[part];
      buf[part === 'header' ? 31 : 0]! ^= 0x01;
      alt.receive(f);
      alt.receive(clone(f1!));
      assert.equal(alt.h.delivered.length, 0, part);
      assert.equal(alt.h.failures.length, 1, part);
    }

    // cut: a shorter tag (the header says the full length, so the decoder would wait; a frame
    // arriving with another tag length is refused before opening)
    const cut = fresh();
    const short = clone(f0!);
    short.tag = short.tag.subarray(0, short.tag.length - 1);
    short.tagLength = short.tag.length;
    cut.receive(short);
    assert.equal(cut.h.failures.length, 1);
    assert.match(cut.h.failures[0]!, /tag/);

    // a frame of another session (other keys): keyed suites refuse it
    if (suite.needsKey) {
      const other = pair(name);
      const o = channel(suite, other.tx, NO_KEYS, null);
      o.ch.send(io(1, 100));
      const foreign = fresh();
      foreign.receive(frames(o.wire)[0]!);
      assert.equal(foreign.h.delivered.length, 0);
      assert.equal(foreign.h.failures.length, 1);
    }
  });
}

test('receiving: a pool failure fails the channel once; frames behind it are never delivered', async () => {
  const { suite, tx } = pair('aes-gcm');
  const s = channel(suite, tx, NO_KEYS, null);
  for (let i = 1; i <= 3; i++) s.ch.send(io(i, 4096));
  const [f0, f1, f2] = frames(s.wire);
  f1!.payload[10]! ^= 0x80; // frame 1 altered
  const crypto = new ManualCrypto();
  const r = channel(suite, NO_KEYS, tx, crypto, 1024);
  for (const f of [f0!, f1!, f2!]) r.ch.receive(f);
  crypto.finish([2, 1]);
  await flush();
  assert.equal(r.failures.length, 1);
  assert.match(r.failures[0]!, /frame 1 rejected: frame authentication failed/);
  crypto.finish([0]);
  await flush();
  assert.equal(r.delivered.length, 0, 'closed: frame 0 finishing late delivers nothing either');
  assert.equal(r.failures.length, 1);
});

test('close: pending frames are dropped, late completions ignored, keys wiped', async () => {
  const { suite, tx } = pair('aes-gcm');
  const keyCopy = Buffer.from(tx.enc);
  const crypto = new ManualCrypto();
  const s = channel(suite, tx, NO_KEYS, crypto, 1024);
  s.ch.send(io(1, 4096));
  s.ch.close();
  assert.equal(s.ch.pendingOut, 0);
  crypto.finish([0]);
  await flush();
  assert.equal(s.wire.length, 0);
  assert.equal(tx.enc.equals(Buffer.alloc(tx.enc.length)), true, 'key wiped');
  assert.equal(keyCopy.equals(tx.enc), false);
  s.ch.send(io(2, 10));
  assert.equal(s.wire.length, 0, 'a closed channel sends nothing');
});

test('suite none: a pass-through with no tag; a tagged frame is refused', () => {
  const none = suiteByName('none');
  const s = channel(none, NO_KEYS, NO_KEYS, new ManualCrypto());
  s.ch.send(io(1, 1 << 20)); // never goes to the pool
  assert.equal(s.wire.length, 1);
  const [f] = frames(s.wire);
  assert.equal(f!.tagLength, 0);
  const r = channel(none, NO_KEYS, NO_KEYS, null);
  r.ch.receive(f!);
  assert.equal(r.delivered.length, 1);
  r.ch.receive({ ...f!, tagLength: 16, tag: Buffer.alloc(16) });
  assert.equal(r.failures.length, 1);
});
