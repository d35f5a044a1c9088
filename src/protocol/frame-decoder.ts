// DST wire protocol v2, the streaming frame decoder: socket chunks in, whole frames out. Pure (no
// I/O); its only state is the stream it is decoding. Where its large payloads come from is the
// owner's choice (a PayloadSource: the engine passes its payload pool).
import { HEADER_SIZE, MAX_PAYLOAD, decodeHeader, validHeader, type Frame } from './wire-header.js';
import { StreamBuffer, unpooled, type PayloadSource } from './stream-buffer.js';

/**
 * Streaming frame decoder: feed() chunks as they arrive, next() pulls one complete frame or null.
 * Pull-style so the owner can stop pulling (backpressure) between frames. Buffered bytes are
 * bounded by one frame (header + max payload + tag) plus the chunk being fed.
 *
 * Copies: a payload inside one fed chunk is returned as a view of it (no copy). A payload that
 * spans chunks is assembled in place: once its header is decoded, ONE buffer of payloadLength
 * bytes is allocated and every later chunk is copied straight into it as it is fed (each byte
 * copied once, no list of chunks to concatenate). The 48 header bytes are always copied into
 * the frame's own buffer (the AAD must not alias a chunk the owner may reuse).
 */
export class FrameDecoder {
  private readonly buf: StreamBuffer;
  /** header decoded; payload and/or tag still to come */
  private frame: Frame | null = null;

  constructor(private readonly maxPayload = MAX_PAYLOAD, payloads: PayloadSource = unpooled) {
    this.buf = new StreamBuffer(payloads);
  }

  feed(chunk: Buffer): void {
    this.buf.feed(chunk);
  }

  /**
   * Like feed(), for a chunk the caller overwrites once this call returns: a socket read into
   * one reused buffer (net.connect's `onread`), which spares an allocation per read. A frame
   * whose payload is large and incomplete gets that payload's buffer at once (its header copied
   * aside), so the bulk of a large payload is copied exactly once (or read straight into place).
   */
  feedTransient(chunk: Buffer): void {
    const buf = this.buf;
    if (this.frame === null && buf.bytes === 0 && buf.dest === null) {
      buf.keepMessages(chunk, 0, this.locate, true); // a new frame starts here, nothing else is buffered
      return;
    }
    const tagLeft = this.tagToCome();
    let at = buf.fillTransient(chunk);
    if (at === chunk.length) return;
    if (tagLeft < 0) {
      buf.keepCopy(chunk, at); // a header cut short, or frames not pulled yet: where the next one starts is not known here
      return;
    }
    const end = Math.min(chunk.length, at + tagLeft);
    if (end > at) buf.keepRange(chunk, at, end);
    at = end;
    if (at < chunk.length) buf.keepMessages(chunk, at, this.locate, false);
  }

  /**
   * Before a chunk is fed: how many of its bytes after the payload in progress finish the frame in
   * progress (its tag), or -1 when that is not known (no header parsed, or frames not pulled yet).
   */
  private tagToCome(): number {
    const f = this.frame;
    const buf = this.buf;
    if (f === null) return -1;
    if (buf.dest !== null) return buf.destFilled < buf.dest.length && buf.bytes === 0 ? f.tagLength : -1;
    return f.payload.length === f.payloadLength && buf.bytes < f.tagLength ? f.tagLength - buf.bytes : -1;
  }

  /** keepMessages' view of the frame at `at`: [payload start, payload length, frame end]. */
  private readonly locate = (chunk: Buffer, at: number): [number, number, number] | null => {
    if (chunk.length - at < HEADER_SIZE || !validHeader(chunk, at, this.maxPayload)) return null;
    const payloadLength = chunk.readUInt32BE(at + 40);
    return [at + HEADER_SIZE, payloadLength, at + HEADER_SIZE + payloadLength + chunk.readUInt16BE(at + 44)];
  };

  /** Where the next socket read should land (see StreamBuffer.readTarget). */
  readTarget(scratch: Buffer): Buffer {
    return this.buf.readTarget(scratch);
  }

  /** Bytes received but not yet returned as frames (header bytes of a pending frame excluded). */
  get pendingBytes(): number {
    return this.buf.bytes + this.buf.destFilled;
  }

  /** True when no partial frame is buffered (a clean frame boundary). */
  get atBoundary(): boolean {
    return this.buf.bytes === 0 && this.frame === null;
  }

  /** Next complete frame, or null if more bytes are needed. Throws DST_ERR_BAD_FRAME. */
  next(): Frame | null {
    const buf = this.buf;
    let f = this.frame;
    if (f === null) {
      if (buf.bytes < HEADER_SIZE) return null;
      const header = Buffer.allocUnsafe(HEADER_SIZE);
      buf.copyOut(header, 0, HEADER_SIZE);
      f = decodeHeader(header, this.maxPayload);
      this.frame = f;
    }
    if (f.payloadLength > 0 && f.payload.length === 0) {
      const payload = buf.payload(f.payloadLength);
      if (payload === null) return null;
      f.payload = payload;
    }
    if (f.tagLength > 0) {
      if (buf.bytes < f.tagLength) return null;
      f.tag = buf.take(f.tagLength);
    }
    this.frame = null;
    return f;
  }
}
