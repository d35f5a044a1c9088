// NBD server-side stream decoder: pure, no I/O. `NbdServerDecoder` is pull-style: the owner
// feeds socket chunks, pulls whole messages with next(), and moves `phase` to 'transmission' once
// the negotiation is over (after the GO ack or the EXPORT_NAME reply). Every length read from the
// wire is checked against a bound BEFORE the bytes it announces are buffered.
import { StreamBuffer, type PayloadSource } from './stream-buffer.js';
import {
  Cmd, CLIENT_FLAGS_SIZE, MAX_OPTION_DATA, MAX_PAYLOAD, NBD_EXTENDED_REQUEST_MAGIC, NBD_IHAVEOPT, NBD_REQUEST_MAGIC,
  OPTION_HEADER_SIZE, REQUEST_HEADER_SIZE, badFrame, optName,
} from './nbd.js';

// ── Decoder messages ─────────────────────────────────────────────────────────────────────────
export type NbdPhase = 'client-flags' | 'options' | 'transmission';

export interface ClientFlagsMessage { kind: 'client-flags'; flags: number }
export interface OptionMessage { kind: 'option'; option: number; data: Buffer }
export interface RequestMessage {
  kind: 'request';
  /** command flags (u16) */
  flags: number;
  /** command type (u16) */
  type: number;
  /** 8 opaque bytes, echoed as they came */
  cookie: Buffer;
  /** u64 offset; values above 2^53 lose precision but stay far past any export size */
  offset: number;
  /** u32 length */
  length: number;
  /** exactly `length` bytes for NBD_CMD_WRITE; null for every other command */
  payload: Buffer | null;
}
export type NbdMessage = ClientFlagsMessage | OptionMessage | RequestMessage;

export interface NbdServerDecoderOptions {
  /** largest option payload (default MAX_OPTION_DATA) */
  maxOptionData?: number;
  /** largest WRITE payload (default MAX_PAYLOAD) */
  maxPayload?: number;
  /** where WRITE payloads are assembled (default: plain allocation; the engine passes its pool) */
  payloads?: PayloadSource;
}

/**
 * Server-side NBD stream decoder (fixed newstyle, compact requests only).
 *
 * phase 'client-flags': the next 4 bytes are the client flags; yields one message and moves
 *   itself to 'options'.
 * phase 'options': option requests (IHAVEOPT · option · length · data).
 * phase 'transmission': compact requests; WRITE carries its payload.
 * The owner sets `phase` between next() calls; it is never changed mid-message.
 * A malformed stream throws DstError DST_ERR_BAD_FRAME; the decoder is then unusable.
 */
export class NbdServerDecoder {
  phase: NbdPhase = 'client-flags';
  private readonly buf: StreamBuffer;
  private pending: RequestMessage | null = null;  // header parsed, payload still arriving
  private pendingOption: { option: number; length: number } | null = null;
  private readonly maxOptionData: number;
  private readonly maxPayload: number;

  constructor(opts: NbdServerDecoderOptions = {}) {
    this.maxOptionData = opts.maxOptionData ?? MAX_OPTION_DATA;
    this.maxPayload = opts.maxPayload ?? MAX_PAYLOAD;
    this.buf = new StreamBuffer(opts.payloads);
  }

  /** bytes buffered and not yet returned as messages */
  get buffered(): number { return this.buf.bytes + this.buf.destFilled; }

  feed(chunk: Buffer): void {
    this.buf.feed(chunk);
  }

  /**
   * Like feed(), for a chunk the caller overwrites once this call returns (a socket read into
   * one reused buffer). Nothing is kept pointing into `chunk`: a large WRITE whose payload is
   * not all here gets its buffer at once (so the rest can be read straight into it: readTarget),
   * and any other remainder is copied into decoder-owned memory.
   */
  feedTransient(chunk: Buffer): void {
    const buf = this.buf;
    if (this.phase !== 'transmission') {
      const at = buf.fillTransient(chunk);
      if (at < chunk.length) buf.keepCopy(chunk, at);
      return;
    }
    if (buf.dest !== null && buf.destFilled < buf.dest.length) {
      // a WRITE payload being assembled (nothing after it buffered): what follows its end starts the next request
      const at = buf.fillTransient(chunk);
      if (at < chunk.length) buf.keepMessages(chunk, at, this.locate, false);
      return;
    }
    if (buf.dest !== null || buf.bytes !== 0 || this.pending !== null) {
      buf.keepCopy(chunk, 0); // a header cut short, or requests not pulled yet
      return;
    }
    buf.keepMessages(chunk, 0, this.locate, true); // a request starts here, nothing else is buffered
  }

  /** keepMessages' view of the request at `at`: [payload start, payload length, end]. */
  private readonly locate = (chunk: Buffer, at: number): [number, number, number] | null => {
    if (chunk.length - at < REQUEST_HEADER_SIZE || chunk.readUInt32BE(at) !== NBD_REQUEST_MAGIC) return null;
    const length = chunk.readUInt16BE(at + 6) === Cmd.WRITE ? chunk.readUInt32BE(at + 24) : 0;
    if (length > this.maxPayload) return null;
    return [at + REQUEST_HEADER_SIZE, length, at + REQUEST_HEADER_SIZE + length];
  };

  /** Where the next socket read should land (see StreamBuffer.readTarget). */
  readTarget(scratch: Buffer): Buffer {
    return this.buf.readTarget(scratch);
  }

  next(): NbdMessage | null {
    switch (this.phase) {
      case 'client-flags': {
        if (this.buf.bytes < CLIENT_FLAGS_SIZE) return null;
        const flags = this.buf.take(CLIENT_FLAGS_SIZE).readUInt32BE(0);
        this.phase = 'options';
        return { kind: 'client-flags', flags };
      }
      case 'options': return this.nextOption();
      case 'transmission': return this.nextRequest();
    }
  }

  private nextOption(): OptionMessage | null {
    if (this.pendingOption === null) {
      if (this.buf.bytes < OPTION_HEADER_SIZE) return null;
      const h = this.buf.take(OPTION_HEADER_SIZE);
      const magic = h.readBigUInt64BE(0);
      if (magic !== NBD_IHAVEOPT) throw badFrame(`bad NBD option magic 0x${magic.toString(16)}`);
      const option = h.readUInt32BE(8);
      const length = h.readUInt32BE(12);
      if (length > this.maxOptionData) {
        throw badFrame(`NBD option ${optName(option)} carries ${length} bytes (limit ${this.maxOptionData})`);
      }
      this.pendingOption = { option, length };
    }
    const { option, length } = this.pendingOption;
    if (this.buf.bytes < length) return null;
    this.pendingOption = null;
    return { kind: 'option', option, data: Buffer.from(this.buf.take(length)) };
  }

  private nextRequest(): RequestMessage | null {
    if (this.pending === null) {
      if (this.buf.bytes < REQUEST_HEADER_SIZE) return null;
      // Parse the header where it lies when it is inside one chunk (the usual case).
      const [h, at] = this.buf.takeInPlace(REQUEST_HEADER_SIZE);
      const magic = h.readUInt32BE(at);
      if (magic !== NBD_REQUEST_MAGIC) {
        throw badFrame(magic === NBD_EXTENDED_REQUEST_MAGIC
          ? 'NBD extended request header without negotiated extended headers'
          : `bad NBD request magic 0x${magic.toString(16).padStart(8, '0')}`);
      }
      const cookie = Buffer.allocUnsafe(8); // own copy: the chunk may be a view the owner reuses
      h.copy(cookie, 0, at + 8, at + 16);
      const req: RequestMessage = {
        kind: 'request',
        flags: h.readUInt16BE(at + 4),
        type: h.readUInt16BE(at + 6),
        cookie,
        offset: h.readUInt32BE(at + 16) * 0x1_0000_0000 + h.readUInt32BE(at + 20),
        length: h.readUInt32BE(at + 24),
        payload: null,
      };
      if (req.type === Cmd.WRITE && req.length > this.maxPayload) {
        throw badFrame(`NBD write of ${req.length} bytes exceeds the maximum payload ${this.maxPayload}`);
      }
      this.pending = req;
    }
    const req = this.pending;
    if (req.type === Cmd.WRITE) {
      // the payload, or null while it is still arriving (then assembled in its own buffer)
      const payload = this.buf.payload(req.length);
      if (payload === null) return null;
      req.payload = payload;
    }
    this.pending = null;
    return req;
  }
}
