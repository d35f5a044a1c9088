// The bytes of one stream, consumed in order by one decoder (the DST frame decoder and the NBD
// request decoder share it): pure, no I/O, no global state. Buffers it allocates come from the
// PayloadSource its owner gives it, so the codec holds no pool (the engine's is
// src/engine/io/payload-pool.ts).

/**
 * Where a StreamBuffer gets the buffers it keeps. Payloads of `min` bytes or more get a buffer of
 * their own from alloc() (one owner, who may give it back to wherever it came from); copy() makes
 * a copy the stream owns of smaller remainders (never from alloc(): frames are cut from such a copy
 * as views, so it has many users).
 */
export interface PayloadSource {
  readonly min: number;
  /** An uninitialised buffer of n bytes; the caller fills all of it. */
  alloc(n: number): Buffer;
  /** A copy of src[start..end). */
  copy(src: Buffer, start: number, end: number): Buffer;
}

/** Plain allocation, nothing pooled: for decoders whose owner keeps no pool (tools, tests). */
export const unpooled: PayloadSource = {
  min: Infinity,
  alloc: (n) => Buffer.allocUnsafe(n),
  copy: (src, start, end) => Buffer.from(src.subarray(start, end)),
};

/** readTarget() hands out the rest of a payload being assembled when at least this much is left. */
const READ_INTO_MIN = 16 * 1024;

/**
 * The bytes of one stream, consumed in order by one decoder. Fed chunks are kept as they are (views, no copy); while a large
 * payload is being received it is filled in place in its own buffer, each byte copied once, or
 * read straight into it by the socket (readTarget).
 */
export class StreamBuffer {
  private chunks: Buffer[] = [];
  /** read offset inside chunks[0] */
  private head = 0;
  /** bytes in the chunks not yet consumed (a payload being assembled excluded) */
  bytes = 0;
  /** payload being assembled in place, and how much of it is filled */
  dest: Buffer | null = null;
  destFilled = 0;

  constructor(private readonly source: PayloadSource = unpooled) {}

  feed(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const dest = this.dest;
    if (dest !== null && this.destFilled < dest.length) {
      // the chunks are empty while a payload is assembled: the bytes go straight to it
      const n = Math.min(dest.length - this.destFilled, chunk.length);
      chunk.copy(dest, this.destFilled, 0, n);
      this.destFilled += n;
      if (n === chunk.length) return;
      chunk = chunk.subarray(n);
    }
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /**
   * For a chunk the caller reuses after this call: put what belongs to the payload being
   * assembled into it. Returns the offset of the first byte of `chunk` not consumed.
   */
  fillTransient(chunk: Buffer): number {
    const dest = this.dest;
    if (dest === null || this.destFilled >= dest.length) return 0;
    if (chunk.buffer === dest.buffer && chunk.byteOffset === dest.byteOffset + this.destFilled
      && chunk.length <= dest.length - this.destFilled) {
      this.destFilled += chunk.length; // read straight into the payload (readTarget): nothing to copy
      return chunk.length;
    }
    const n = Math.min(dest.length - this.destFilled, chunk.length);
    chunk.copy(dest, this.destFilled, 0, n);
    this.destFilled += n;
    return n;
  }

  /** Keep chunk[from..] in memory this buffer owns (the caller reuses `chunk`). */
  keepCopy(chunk: Buffer, from: number): void {
    this.keepRange(chunk, from, chunk.length);
  }

  /** Keep chunk[from..to) in memory this buffer owns. */
  keepRange(chunk: Buffer, from: number, to: number): void {
    this.chunks.push(this.source.copy(chunk, from, to));
    this.bytes += to - from;
  }

  /**
   * keepCopy() for chunk[from..] that starts on a message boundary (the messages before it complete): the
   * payload of every message wholly inside it that has source.min bytes or more gets a
   * buffer of its own from the source (one owner, so whoever is done with it can recycle it)
   * instead of a slice of a shared slab, which at 4 KiB per request was the engines' main
   * source of garbage. `locate(chunk, at)` describes the message at `at` as [payload start,
   * payload length, end], or null when it cannot tell (cut short or malformed: the rest is kept
   * as it is, and the decoder reports it when it gets there). `front`: nothing else is buffered,
   * so when the first message's payload is large enough for readTarget (READ_INTO_MIN) and not all
   * here, it is assembled in place at once (beginPayload) and the rest read straight into it;
   * smaller ones measured faster through the ordinary path, which pools them too (payload()).
   */
  keepMessages(chunk: Buffer, from: number, locate: (chunk: Buffer, at: number) => [number, number, number] | null, front: boolean): void {
    if (front) {
      const m = locate(chunk, from);
      if (m !== null && m[1] >= READ_INTO_MIN && m[0] + m[1] > chunk.length) {
        this.beginPayload(chunk, from, m[0] - from, m[1]);
        return;
      }
    }
    const source = this.source;
    let kept = from;
    for (let at = from; ;) {
      const m = locate(chunk, at);
      if (m === null || m[2] > chunk.length) break;
      const [start, length, end] = m;
      if (length >= source.min) {
        if (start > kept) this.keepRange(chunk, kept, start);
        const own = source.alloc(length);
        chunk.copy(own, 0, start, start + length);
        this.chunks.push(own);
        this.bytes += length;
        kept = start + length;
      }
      at = end;
    }
    if (kept < chunk.length) this.keepRange(chunk, kept, chunk.length);
  }

  /**
   * A message starts at chunk[from] with a header of headerSize bytes and a payload of
   * payloadLength bytes that is not all here: keep the header (the decoder parses it), and give
   * the payload its buffer now, filled with what is here.
   */
  beginPayload(chunk: Buffer, from: number, headerSize: number, payloadLength: number): void {
    this.chunks.push(this.source.copy(chunk, from, from + headerSize));
    this.bytes += headerSize;
    const d = this.source.alloc(payloadLength);
    chunk.copy(d, 0, from + headerSize);
    this.dest = d;
    this.destFilled = chunk.length - from - headerSize;
  }

  /**
   * Where the next socket read should land (net.connect's `onread.buffer` as a function): the
   * unfilled rest of the payload being assembled when at least READ_INTO_MIN bytes of it are
   * missing, so the kernel copies it straight into place; else `scratch`. Feed what was read
   * with fillTransient() (through the decoder's feedTransient()).
   */
  readTarget(scratch: Buffer): Buffer {
    const dest = this.dest;
    if (dest !== null && dest.length - this.destFilled >= READ_INTO_MIN) return dest.subarray(this.destFilled);
    return scratch;
  }

  /**
   * The next n-byte payload: a view when it is all buffered in one chunk (else a copy); null
   * when it is not all here yet — it is then assembled in place and returned by a later call.
   */
  payload(n: number): Buffer | null {
    const dest = this.dest;
    if (dest !== null) {
      if (this.destFilled < dest.length) return null;
      this.dest = null;
      this.destFilled = 0;
      return dest;
    }
    if (this.bytes >= n) return this.take(n);
    const d = this.source.alloc(n);
    const have = this.bytes;
    this.copyOut(d, 0, have);
    this.dest = d;
    this.destFilled = have;
    return null;
  }

  /** Consume n ≤ bytes bytes where they lie: [chunk, offset] when in one chunk, else [a copy, 0]. */
  takeInPlace(n: number): [Buffer, number] {
    const first = this.chunks[0]!;
    const at = this.head;
    if (first.length - at < n) {
      const out = this.source.alloc(n);
      this.copyOut(out, 0, n);
      return [out, 0];
    }
    this.head += n;
    this.bytes -= n;
    if (this.head === first.length) {
      this.chunks.shift();
      this.head = 0;
    }
    return [first, at];
  }

  /** Copy the next n ≤ bytes bytes into out[at..] and consume them. */
  copyOut(out: Buffer, at: number, n: number): void {
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const want = Math.min(c.length - this.head, n - filled);
      c.copy(out, at + filled, this.head, this.head + want);
      filled += want;
      this.head += want;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.bytes -= n;
  }

  /** Consume n ≤ bytes bytes: a view when they lie in one chunk, else a copy. */
  take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const [b, at] = this.takeInPlace(n);
    return b.length === n ? b : b.subarray(at, at + n);
  }
}

const EMPTY = Buffer.alloc(0);
