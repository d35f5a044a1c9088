// The sealed channel (DESIGN §9): what both ends of a DST connection run after the handshake.
//
// Sending: every frame gets the next per-direction sequence number at SEND time (from 0 after the
// handshake); its header already carries payloadLength = sealedLength() and tagLength, and is the
// AAD. Frames under `inlineBelow` bytes (64 KiB) are sealed on the calling thread; larger ones go
// to the engine's crypto pool (worker threads), which may finish them in any order. An ordered
// output queue writes frames strictly in sequence order: a frame sealed early waits for the ones
// numbered before it. The queue is bounded by its owner (the transaction pool on the remote side,
// the in-flight cap and MAX_BYTES_IN_FLIGHT on the export side: see pendingOutBytes).
//
// Receiving: frames are numbered in arrival order with the expected receive sequence and opened
// (small ones inline, large ones in the pool); opened frames are delivered strictly in arrival
// order, and only once authenticated. Any failure (tag, reorder, replay, truncation, alteration,
// wrong tag length) → fail(reason) once, and nothing after it is delivered or written: the owner
// logs the reason and closes the connection.
//
// Suite "none" is a plain pass-through (no tag, nothing to check) so both connections have one
// send/receive path whatever the suite.
import { SMALL_FRAME } from './crypto-pool.js';
import { encodeHeader, type Frame, type FrameInit } from '../protocol/wire.js';
import { releasePayload } from './io/payload-pool.js';
import { open, seal, sealedLength, type DirectionKeys, type Sealed, type Suite } from '../protocol/suites.js';

const EMPTY = Buffer.alloc(0);

/** What the channel needs from the crypto pool (CryptoPool implements it; tests pass fakes). */
export interface FrameCrypto {
  seal(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, plain: Buffer): Promise<Sealed>;
  open(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, payload: Buffer, tag: Buffer): Promise<Buffer>;
}

export interface ChannelOptions {
  suite: Suite;
  /** keys of our sending direction */
  tx: DirectionKeys;
  /** keys of our receiving direction */
  rx: DirectionKeys;
  /** the engine's crypto pool; null = everything inline */
  crypto: FrameCrypto | null;
  /** write one sealed frame (header, payload, tag; empty parts omitted), in sequence order */
  write: (parts: Buffer[], written?: () => void) => void;
  /** an opened frame (payload = plaintext, payloadLength = its length, tag empty), in arrival order */
  deliver: (frame: Frame) => void;
  /** a seal/open failure; called once, the channel is closed before it runs */
  fail: (reason: string) => void;
  /** frames whose payload is under this many bytes are sealed/opened inline (default 64 KiB) */
  inlineBelow?: number;
  /** called after frames finished by the pool were written or delivered (owner re-checks backpressure) */
  onProgress?: () => void;
}

interface OutSlot {
  parts: Buffer[] | null;
  bytes: number;
  /** runs once the socket wrote the frame */
  written: (() => void) | undefined;
}

interface InSlot {
  frame: Frame;
  done: boolean;
  /** payload bytes as received (opening may swap the payload) */
  bytes: number;
}

/** Keys for suites without one (none, none+<h>): the tag needs no key. */
export const NO_KEYS: DirectionKeys = Object.freeze({ enc: EMPTY, mac: EMPTY }) as DirectionKeys;

export class SealedChannel {
  private txSeq = 0;
  private rxSeq = 0;
  private readonly out: OutSlot[] = [];
  private outHead = 0;
  private outBytes = 0;
  private readonly inq: InSlot[] = [];
  private inHead = 0;
  private inBytes = 0;
  private closed = false;
  private flushWaiters: (() => void)[] = [];
  private readonly inlineBelow: number;
  private readonly passthrough: boolean;

  constructor(private readonly o: ChannelOptions) {
    this.inlineBelow = o.crypto ? (o.inlineBelow ?? SMALL_FRAME) : Infinity;
    this.passthrough = o.suite.name === 'none';
  }

  get suite(): Suite {
    return this.o.suite;
  }

  /** Sequence number the next sent frame gets. */
  get sendSeq(): number {
    return this.txSeq;
  }

  /** Sequence number the next received frame must carry. */
  get receiveSeq(): number {
    return this.rxSeq;
  }

  /** Frames numbered but not yet written (waiting for the pool or for an earlier frame). */
  get pendingOut(): number {
    return this.out.length - this.outHead;
  }

  /** Plaintext bytes of frames numbered but not yet written. */
  get pendingOutBytes(): number {
    return this.outBytes;
  }

  /** Frames received but not yet delivered (being opened, or behind one that is). */
  get pendingIn(): number {
    return this.inq.length - this.inHead;
  }

  /** Payload bytes of those frames (as received). */
  get pendingInBytes(): number {
    return this.inBytes;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ---- sending ----

  /**
   * Seal and (in sequence order) write one frame. A no-op once closed. `done` runs once nothing
   * reads init.payload any more (sealed, or written when the suite sends it as it is); never if
   * the frame is dropped, when the payload is simply collected.
   */
  send(init: FrameInit, done?: () => void): void {
    if (this.closed) return;
    const plain = init.payload ?? EMPTY;
    const suite = this.o.suite;
    const header = encodeHeader({
      cmd: init.cmd, op: init.op ?? 0, flags: init.flags ?? 0, status: init.status ?? 0, length: init.length ?? 0,
      id: init.id ?? 0, offset: init.offset ?? 0, ackedBelow: init.ackedBelow ?? 0,
      payloadLength: sealedLength(suite, plain.length), tagLength: suite.tagLength,
    });
    const seq = this.txSeq++;
    if (this.passthrough) {
      this.emitParts({ parts: framed(header, plain, EMPTY), bytes: plain.length, written: done });
      return;
    }
    if (plain.length < this.inlineBelow) {
      let sealed: Sealed;
      try {
        sealed = seal(suite, this.o.tx, seq, header, plain);
      } catch (err) {
        this.failNow(`sealing frame ${seq} failed: ${(err as Error).message}`);
        return;
      }
      const sentAsIs = sealed.payload === plain; // an integrity-only suite sends plain itself
      if (!sentAsIs) done?.();
      this.emitParts({ parts: framed(header, sealed.payload, sealed.tag), bytes: plain.length, written: sentAsIs ? done : undefined });
      return;
    }
    const slot: OutSlot = { parts: null, bytes: plain.length, written: undefined };
    this.out.push(slot);
    this.outBytes += plain.length;
    // the worker reads plain until the job settles: only then may the owner reuse it
    this.o.crypto!.seal(suite, this.o.tx, seq, header, plain).then(
      (sealed) => {
        const sentAsIs = sealed.payload === plain;
        if (!sentAsIs) done?.();
        if (this.closed) {
          if (!sentAsIs) releasePayload(sealed.payload);
          return;
        }
        slot.parts = framed(header, sealed.payload, sealed.tag);
        slot.written = sentAsIs ? done : () => releasePayload(sealed.payload);
        this.flushOut();
        this.o.onProgress?.();
      },
      (err) => {
        done?.();
        this.failNow(`sealing frame ${seq} failed: ${(err as Error)?.message ?? String(err)}`);
      },
    );
  }

  /** A frame sealed inline: written at once when nothing waits before it, else queued in order. */
  private emitParts(slot: OutSlot): void {
    if (this.pendingOut === 0) {
      this.o.write(slot.parts!, slot.written);
      return;
    }
    this.out.push(slot);
    this.outBytes += slot.bytes;
  }

  private flushOut(): void {
    while (!this.closed && this.outHead < this.out.length) {
      const slot = this.out[this.outHead]!;
      if (!slot.parts) break;
      this.outHead++;
      this.outBytes -= slot.bytes;
      const parts = slot.parts;
      slot.parts = null;
      this.o.write(parts, slot.written);
    }
    if (this.outHead === this.out.length) {
      this.out.length = 0;
      this.outHead = 0;
      this.wakeFlushWaiters();
    } else if (this.outHead > 64 && this.outHead * 2 > this.out.length) {
      this.out.splice(0, this.outHead);
      this.outHead = 0;
    }
  }

  /** Run cb once every frame numbered so far was written (at once if none waits); dropped if closed. */
  whenFlushed(cb: () => void): void {
    if (this.closed) return;
    if (this.pendingOut === 0) cb();
    else this.flushWaiters.push(cb);
  }

  private wakeFlushWaiters(): void {
    if (this.flushWaiters.length === 0) return;
    const ws = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of ws) w();
  }

  // ---- receiving ----

  /** One frame as it came off the wire, in arrival order. */
  receive(frame: Frame): void {
    if (this.closed) return;
    const suite = this.o.suite;
    const seq = this.rxSeq++;
    if (frame.tagLength !== suite.tagLength) {
      this.failNow(`bad frame ${seq}: a ${frame.tagLength}-byte tag where suite ${suite.name} uses ${suite.tagLength}`);
      return;
    }
    const idle = this.pendingIn === 0;
    if (this.passthrough || frame.payload.length < this.inlineBelow) {
      let plain: Buffer;
      if (this.passthrough) plain = frame.payload;
      else {
        try {
          plain = open(suite, this.o.rx, seq, frame.header, frame.payload, frame.tag);
        } catch (err) {
          this.failNow(`frame ${seq} rejected: ${(err as Error).message}`);
          return;
        }
      }
      opened(frame, plain);
      if (idle) this.o.deliver(frame);
      else {
        this.inq.push({ frame, done: true, bytes: frame.payload.length });
        this.inBytes += frame.payload.length;
      }
      return;
    }
    const slot: InSlot = { frame, done: false, bytes: frame.payload.length };
    this.inq.push(slot);
    this.inBytes += slot.bytes;
    this.o.crypto!.open(suite, this.o.rx, seq, frame.header, frame.payload, frame.tag).then(
      (plain) => {
        if (this.closed) {
          if (plain !== frame.payload) releasePayload(plain);
          return;
        }
        opened(frame, plain);
        slot.done = true;
        this.flushIn();
        this.o.onProgress?.();
      },
      (err) => this.failNow(`frame ${seq} rejected: ${(err as Error)?.message ?? String(err)}`),
    );
  }

  private flushIn(): void {
    while (!this.closed && this.inHead < this.inq.length) {
      const slot = this.inq[this.inHead]!;
      if (!slot.done) break;
      this.inHead++;
      this.inBytes -= slot.bytes;
      this.o.deliver(slot.frame);
    }
    if (this.inHead === this.inq.length) {
      this.inq.length = 0;
      this.inHead = 0;
    } else if (this.inHead > 64 && this.inHead * 2 > this.inq.length) {
      this.inq.splice(0, this.inHead);
      this.inHead = 0;
    }
  }

  // ---- closing ----

  private failNow(reason: string): void {
    if (this.closed) return;
    this.close();
    this.o.fail(reason);
  }

  /** Drop everything queued; late pool results are ignored. Wipes the session keys. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.out.length = 0;
    this.outHead = 0;
    this.outBytes = 0;
    this.inq.length = 0;
    this.inHead = 0;
    this.inBytes = 0;
    this.flushWaiters = [];
    for (const k of [this.o.tx, this.o.rx]) {
      if (k === NO_KEYS) continue;
      k.enc.fill(0);
      k.mac.fill(0);
    }
  }
}

function framed(header: Buffer, payload: Buffer, tag: Buffer): Buffer[] {
  if (payload.length === 0) return tag.length === 0 ? [header] : [header, tag];
  return tag.length === 0 ? [header, payload] : [header, payload, tag];
}

/** The frame now carries its plaintext; the sealed payload, dead from here on, goes back to the pool. */
function opened(frame: Frame, plain: Buffer): void {
  if (plain !== frame.payload) releasePayload(frame.payload);
  frame.payload = plain;
  frame.payloadLength = plain.length;
  frame.tag = EMPTY;
}
