// DST wire protocol v2: pure codec, no I/O. Byte layout documented in man/dst-protocol.7.
//
// Every frame = 48-byte big-endian header, then `payloadLength` bytes of payload, then
// `tagLength` bytes of tag (authentication tag when a suite is on; 0 otherwise).
//
//  off size field
//   0   4   magic 0x44535432 ("DST2")
//   4   1   version (2)
//   5   1   cmd          (Cmd)
//   6   1   op           (Op; 0 for non-IO frames)
//   7   1   flags        (Flag bits)
//   8   4   status       (errno, 0 = ok; in IO_RESPONSE and HELLO_REPLY)
//  12   4   length       (I/O length in bytes for IO/IO_RESPONSE; 0 otherwise)
//  16   8   id           (transaction id; PING/PONG echo it)
//  24   8   offset       (byte offset for IO)
//  32   8   ackedBelow   (IO: every id below it has completed at the client)
//  40   4   payloadLength
//  44   2   tagLength
//  46   2   reserved (0)
//
// Having an explicit payloadLength makes framing independent of command semantics: a frame
// can always be skipped whole, and semantic checks (a WRITE carries `length` bytes) happen once,
// in the export's validator.
import { DstError } from '../util/errors.js';

export const WIRE_MAGIC = 0x44535432;
export const WIRE_VERSION = 2;
export const HEADER_SIZE = 48;
/** Absolute cap on one frame's payload: max-request cap (32 MiB) plus room for crypto framing. */
export const MAX_PAYLOAD = 32 * 1024 * 1024 + 4096;
export const MAX_TAG = 64;

export enum Cmd {
  HELLO = 1,
  HELLO_REPLY = 2,
  AUTH = 3,
  IO = 4,
  IO_RESPONSE = 5,
  PING = 6,
  PONG = 7,
  CLOSE = 8,
}

export enum Op {
  NONE = 0,
  READ = 1,
  WRITE = 2,
  FLUSH = 3,
  TRIM = 4,
  WRITE_ZEROES = 5,
}

export const Flag = {
  FUA: 0x01,
  REPLAY: 0x02,
} as const;
export const KNOWN_FLAGS = Flag.FUA | Flag.REPLAY;

export interface FrameHeader {
  cmd: Cmd;
  op: Op;
  flags: number;
  status: number;
  length: number;
  id: number;
  offset: number;
  ackedBelow: number;
  payloadLength: number;
  tagLength: number;
}

export interface Frame extends FrameHeader {
  /** the 48 header bytes as received (AAD for sealed suites) */
  header: Buffer;
  payload: Buffer;
  tag: Buffer;
}

export function cmdName(cmd: number): string {
  return Cmd[cmd] ?? `cmd#${cmd}`;
}

export function opName(op: number): string {
  return Op[op] ?? `op#${op}`;
}

function writeU64(buf: Buffer, value: number, off: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), off);
  buf.writeUInt32BE(value >>> 0, off + 4);
}

function readU64(buf: Buffer, off: number, field: string): number {
  const hi = buf.readUInt32BE(off);
  if (hi > 0x1f_ffff) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: ${field} exceeds 2^53`);
  return hi * 0x1_0000_0000 + buf.readUInt32BE(off + 4);
}

/** Write the 48-byte header fields into `into` at `off` (hot path: no intermediate object). */
function writeHeaderFields(into: Buffer, off: number, cmd: number, op: number, flags: number, status: number,
  length: number, id: number, offset: number, ackedBelow: number, payloadLength: number, tagLength: number): void {
  into.writeUInt32BE(WIRE_MAGIC, off);
  into[off + 4] = WIRE_VERSION;
  into[off + 5] = cmd;
  into[off + 6] = op;
  into[off + 7] = flags;
  into.writeUInt32BE(status >>> 0, off + 8);
  into.writeUInt32BE(length >>> 0, off + 12);
  writeU64(into, id, off + 16);
  writeU64(into, offset, off + 24);
  writeU64(into, ackedBelow, off + 32);
  into.writeUInt32BE(payloadLength >>> 0, off + 40);
  into.writeUInt16BE(tagLength, off + 44);
  into.writeUInt16BE(0, off + 46);
}

/** Encode the 48-byte header. */
export function encodeHeader(h: FrameHeader, into: Buffer = Buffer.allocUnsafe(HEADER_SIZE)): Buffer {
  into.writeUInt8(h.cmd, 5); // range checks of the u8 fields (the hot path writes bytes directly)
  into.writeUInt8(h.op, 6);
  into.writeUInt8(h.flags, 7);
  writeHeaderFields(into, 0, h.cmd, h.op, h.flags, h.status, h.length, h.id, h.offset, h.ackedBelow, h.payloadLength, h.tagLength);
  return into;
}

/** KNOWN_CMD[c] === 1 for every Cmd value. */
const KNOWN_CMD = new Uint8Array(256);
for (const v of Object.values(Cmd)) if (typeof v === 'number') KNOWN_CMD[v] = 1;

/** Check the header at buf[off..off+48) (magic, version, command, sizes). Throws DST_ERR_BAD_FRAME. */
function checkHeader(buf: Buffer, off: number, maxPayload: number): void {
  const magic = buf.readUInt32BE(off);
  if (magic !== WIRE_MAGIC) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: magic 0x${magic.toString(16).padStart(8, '0')} is not DST2`);
  const version = buf[off + 4]!;
  if (version !== WIRE_VERSION) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: protocol version ${version}, expected ${WIRE_VERSION}`);
  const cmd = buf[off + 5]!;
  if (KNOWN_CMD[cmd] !== 1) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: unknown command ${cmd}`);
  const payloadLength = buf.readUInt32BE(off + 40);
  if (payloadLength > maxPayload) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: payload of ${payloadLength} bytes exceeds the limit of ${maxPayload}`);
  const tagLength = buf.readUInt16BE(off + 44);
  if (tagLength > MAX_TAG) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: tag of ${tagLength} bytes exceeds ${MAX_TAG}`);
  if (buf.readUInt16BE(off + 46) !== 0) throw new DstError('DST_ERR_BAD_FRAME', 'bad frame: reserved field is not zero');
}

/** Decode and check a header (magic, version, sizes). Throws DST_ERR_BAD_FRAME. */
export function decodeHeader(buf: Buffer, maxPayload = MAX_PAYLOAD): FrameHeader {
  if (buf.length < HEADER_SIZE) throw new DstError('DST_ERR_BAD_FRAME', `bad frame: header needs ${HEADER_SIZE} bytes, got ${buf.length}`);
  checkHeader(buf, 0, maxPayload);
  return {
    cmd: buf[5]!,
    op: buf[6]!,
    flags: buf[7]!,
    status: buf.readUInt32BE(8),
    length: buf.readUInt32BE(12),
    id: readU64(buf, 16, 'id'),
    offset: readU64(buf, 24, 'offset'),
    ackedBelow: readU64(buf, 32, 'ackedBelow'),
    payloadLength: buf.readUInt32BE(40),
    tagLength: buf.readUInt16BE(44),
  };
}

/** checkHeader() as a predicate. */
function validHeader(buf: Buffer, off: number, maxPayload: number): boolean {
  try {
    checkHeader(buf, off, maxPayload);
    return true;
  } catch {
    return false;
  }
}

/** readTarget() hands out the rest of a payload being assembled when at least this much is left. */
const READ_INTO_MIN = 16 * 1024;

/** A checked header (its own 48-byte copy) as a Frame whose payload and tag are still to come. */
function frameOf(header: Buffer, maxPayload: number): Frame {
  checkHeader(header, 0, maxPayload);
  // One object literal with every field, always in this order: one hidden class for all frames.
  return {
    cmd: header[5]!,
    op: header[6]!,
    flags: header[7]!,
    status: header.readUInt32BE(8),
    length: header.readUInt32BE(12),
    id: readU64(header, 16, 'id'),
    offset: readU64(header, 24, 'offset'),
    ackedBelow: readU64(header, 32, 'ackedBelow'),
    payloadLength: header.readUInt32BE(40),
    tagLength: header.readUInt16BE(44),
    header,
    payload: EMPTY,
    tag: EMPTY,
  };
}

export interface FrameInit {
  cmd: Cmd;
  op?: Op;
  flags?: number;
  status?: number;
  length?: number;
  id?: number;
  offset?: number;
  ackedBelow?: number;
  payload?: Buffer | null;
  tag?: Buffer | null;
}

/** Encode a whole frame as buffers for one writev (header, payload, tag; empty parts omitted). */
export function encodeFrame(f: FrameInit): Buffer[] {
  const payload = f.payload ?? null;
  const tag = f.tag ?? null;
  const op = f.op ?? Op.NONE;
  const flags = f.flags ?? 0;
  if ((f.cmd & 0xff) !== f.cmd || (op & 0xff) !== op || (flags & 0xff) !== flags) {
    throw new DstError('DST_ERR_INVALID', `frame header field out of range (cmd ${f.cmd}, op ${op}, flags ${flags})`);
  }
  const header = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeaderFields(header, 0, f.cmd, op, flags, f.status ?? 0, f.length ?? 0, f.id ?? 0, f.offset ?? 0,
    f.ackedBelow ?? 0, payload === null ? 0 : payload.length, tag === null ? 0 : tag.length);
  if (payload === null || payload.length === 0) {
    return tag === null || tag.length === 0 ? [header] : [header, tag];
  }
  return tag === null || tag.length === 0 ? [header, payload] : [header, payload, tag];
}

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
  private readonly buf = new StreamBuffer();
  /** header decoded; payload and/or tag still to come */
  private frame: Frame | null = null;

  constructor(private readonly maxPayload = MAX_PAYLOAD) {}

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
      f = frameOf(header, this.maxPayload);
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

/**
 * The bytes of one stream, consumed in order by one decoder (the DST frame decoder and the NBD
 * request decoder share it). Fed chunks are kept as they are (views, no copy); while a large
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
    this.chunks.push(ownedCopy(chunk, from, to));
    this.bytes += to - from;
  }

  /**
   * keepCopy() for chunk[from..] that starts on a message boundary (the messages before it complete): the
   * payload of every message wholly inside it that has POOL_MIN bytes or more gets a
   * payload-pool buffer of its own (one owner, so whoever is done with it can recycle it)
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
    let kept = from;
    for (let at = from; ;) {
      const m = locate(chunk, at);
      if (m === null || m[2] > chunk.length) break;
      const [start, length, end] = m;
      if (length >= POOL_MIN) {
        if (start > kept) this.keepRange(chunk, kept, start);
        const own = allocPayload(length);
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
    this.chunks.push(ownedCopy(chunk, from, from + headerSize));
    this.bytes += headerSize;
    const d = allocPayload(payloadLength);
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
    const d = allocPayload(n);
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
      const out = allocPayload(n);
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

// ---- Payload pool: large payload buffers are reused, not re-allocated per request ----
//
// Every new large Buffer costs an mmap, a page fault per 4 KiB page when first written, an
// munmap when collected, and V8 "external memory" that triggers a full mark-compact every
// ~64 MiB allocated: at 1 GB/s that was a third of an engine's CPU (bench/README.md). Buffers
// of POOL_MIN bytes or more that the decoders assemble come from here; whoever is provably the
// last user of one gives it back with releasePayload(). A buffer never released is simply
// collected: release is an optimisation, never an obligation. Only buffers lent by the pool
// and not yet given back are taken back (a WeakSet of their ArrayBuffers), so releasing a
// foreign buffer, or the same one twice, is a no-op.
//
// Pooled buffers are SharedArrayBuffer-backed: the crypto pool's workers seal and open them
// where they are (postMessage shares a SharedArrayBuffer instead of cloning it), so a 1 MiB
// frame crosses to a worker and back without a copy or a fresh allocation on the main thread.

/**
 * Smallest payload taken from the pool. 4 KiB: block-sized reads and writes are the common
 * case, and at ~60k/s a fresh buffer (or slab) for each drove a full mark-compact every few
 * hundred ms on the export (bench/README.md); recycled, they allocate nothing.
 */
export const POOL_MIN = 4 * 1024;
/** At most this many bytes of free buffers are kept. */
export const POOL_MAX_FREE = 48 * 1024 * 1024;
const poolFree = new Map<number, SharedArrayBuffer[]>();
const poolLent = new WeakSet<ArrayBufferLike>();
let poolFreeBytes = 0;

/** Size class for n ≥ POOL_MIN: 2^k × {1, 1.25, 1.5, 1.75} (≤ 25 % slack, few classes). */
function sizeClass(n: number): number {
  const p = 2 ** Math.floor(Math.log2(n));
  const step = p / 4;
  return Math.ceil(n / step) * step;
}

/** An uninitialised buffer of n bytes; pooled when n ≥ POOL_MIN. The caller fills all of it. */
export function allocPayload(n: number): Buffer {
  if (n < POOL_MIN) return Buffer.allocUnsafe(n);
  const size = sizeClass(n);
  const list = poolFree.get(size);
  let ab = list !== undefined ? list.pop() : undefined;
  if (ab !== undefined) poolFreeBytes -= size;
  else ab = new SharedArrayBuffer(size);
  poolLent.add(ab);
  return Buffer.from(ab, 0, n);
}

/**
 * Give a payload from allocPayload() back once nothing will read or write it again (its bytes
 * are in the kernel, on disk, or copied). No-op for any other buffer.
 */
export function releasePayload(buf: Buffer | null): void {
  if (buf === null) return;
  const ab = buf.buffer;
  if (!(ab instanceof SharedArrayBuffer) || !poolLent.has(ab)) return;
  poolLent.delete(ab);
  const size = ab.byteLength;
  if (poolFreeBytes + size > POOL_MAX_FREE) return; // the pool is full
  let list = poolFree.get(size);
  if (list === undefined) {
    list = [];
    poolFree.set(size, list);
  }
  list.push(ab);
  poolFreeBytes += size;
}

// Decoder-owned copies (remainders of transient chunks) are cut from shared slabs: one
// ArrayBuffer per SMALL_SLAB bytes instead of one per copy. A slab is collected once every view
// cut from it is gone. Never from the payload pool: frames are taken from a copy as views, and a
// pooled buffer must have exactly one owner (releasing one view would recycle the others).
const SMALL_SLAB = 256 * 1024;
let smallSlab: Buffer | null = null;
let smallUsed = 0;

function smallAlloc(n: number): Buffer {
  if (n > SMALL_SLAB / 4) return Buffer.allocUnsafeSlow(n);
  if (smallSlab === null || smallUsed + n > SMALL_SLAB) {
    smallSlab = Buffer.allocUnsafeSlow(SMALL_SLAB);
    smallUsed = 0;
  }
  const out = smallSlab.subarray(smallUsed, smallUsed + n);
  smallUsed += (n + 7) & ~7;
  return out;
}

/** A decoder-owned copy of src[start..end) (small ones share a slab). */
export function ownedCopy(src: Buffer, start: number, end: number): Buffer {
  const out = smallAlloc(end - start);
  src.copy(out, 0, start, end);
  return out;
}

/**
 * Forget free buffers larger than `keepMax` bytes (they are collected like any garbage); returns
 * the bytes dropped. A burst of large requests would otherwise pin up to POOL_MAX_FREE for good.
 */
export function dropPooledPayloads(keepMax: number): number {
  let dropped = 0;
  for (const [size, list] of poolFree) {
    if (size <= keepMax) continue;
    dropped += size * list.length;
    poolFree.delete(size);
  }
  poolFreeBytes -= dropped;
  return dropped;
}

/** Bytes of free buffers held by the pool (tests). */
export function pooledBytes(): number {
  return poolFreeBytes;
}

// ---- HELLO / HELLO_REPLY / AUTH payloads: typed TLV fields (u16 type, u16 length, value).
// Unknown field types are skipped, so a newer peer may add fields an older one ignores.

export const Access = { READ: 1, WRITE: 2 } as const;

export interface Hello {
  /** protocol version the client speaks */
  version: number;
  /** "" = the default export */
  exportName: string;
  /** 16 random bytes per remote `start`, kept across reconnects */
  sessionId: Buffer;
  /** requested Access bits */
  access: number;
  /** canonical suite name, e.g. "none", "aes-gcm" */
  suite: string;
  /** first 8 bytes of SHA-256 of the client's key; null = no key */
  keyId: Buffer | null;
  /** 32 random bytes, fresh per handshake */
  nonce: Buffer;
}

export interface HelloReply {
  /** 16-byte export identity (UUID stored in the export's state dir) */
  identity: Buffer;
  size: number;
  blockSize: number;
  maxRequest: number;
  /** granted Access bits */
  granted: number;
  suite: string;
  nonce: Buffer;
  /** human-readable reason when the frame's status refuses the HELLO */
  message: string | null;
}

export interface Auth {
  /** HMAC(confirm key, HELLO transcript) */
  proof: Buffer;
}

enum HelloField { VERSION = 1, EXPORT_NAME = 2, SESSION_ID = 3, ACCESS = 4, SUITE = 5, KEY_ID = 6, NONCE = 7 }
enum ReplyField { IDENTITY = 1, SIZE = 2, BLOCK_SIZE = 3, MAX_REQUEST = 4, GRANTED = 5, SUITE = 6, NONCE = 7, MESSAGE = 8 }
enum AuthField { PROOF = 1 }

function tlv(type: number, value: Buffer): Buffer {
  if (value.length > 0xffff) throw new DstError('DST_ERR_INVALID', `field ${type} too long (${value.length} bytes)`);
  const out = Buffer.allocUnsafe(4 + value.length);
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(value.length, 2);
  value.copy(out, 4);
  return out;
}

const u8 = (n: number): Buffer => Buffer.from([n & 0xff]);
const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };
const u64 = (n: number): Buffer => { const b = Buffer.alloc(8); writeU64(b, n, 0); return b; };

function parseTlv(buf: Buffer, what: string): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off < buf.length) {
    if (off + 4 > buf.length) throw new DstError('DST_ERR_BAD_FRAME', `bad ${what}: field header cut at byte ${off}`);
    const type = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2);
    if (off + 4 + len > buf.length) throw new DstError('DST_ERR_BAD_FRAME', `bad ${what}: field ${type} runs past the payload`);
    if (out.has(type)) throw new DstError('DST_ERR_BAD_FRAME', `bad ${what}: field ${type} repeated`);
    out.set(type, buf.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return out;
}

function need(fields: Map<number, Buffer>, type: number, size: number | null, what: string, name: string): Buffer {
  const v = fields.get(type);
  if (!v) throw new DstError('DST_ERR_BAD_FRAME', `bad ${what}: ${name} missing`);
  if (size !== null && v.length !== size) throw new DstError('DST_ERR_BAD_FRAME', `bad ${what}: ${name} is ${v.length} bytes, expected ${size}`);
  return v;
}

export function encodeHello(h: Hello): Buffer {
  const parts = [
    tlv(HelloField.VERSION, u8(h.version)),
    tlv(HelloField.EXPORT_NAME, Buffer.from(h.exportName, 'utf8')),
    tlv(HelloField.SESSION_ID, h.sessionId),
    tlv(HelloField.ACCESS, u8(h.access)),
    tlv(HelloField.SUITE, Buffer.from(h.suite, 'utf8')),
    tlv(HelloField.NONCE, h.nonce),
  ];
  if (h.keyId) parts.push(tlv(HelloField.KEY_ID, h.keyId));
  return Buffer.concat(parts);
}

export function decodeHello(buf: Buffer): Hello {
  const w = 'HELLO';
  const f = parseTlv(buf, w);
  const keyId = f.get(HelloField.KEY_ID);
  if (keyId && keyId.length !== 8) throw new DstError('DST_ERR_BAD_FRAME', `bad ${w}: key id is ${keyId.length} bytes, expected 8`);
  return {
    version: need(f, HelloField.VERSION, 1, w, 'version')[0]!,
    exportName: need(f, HelloField.EXPORT_NAME, null, w, 'export name').toString('utf8'),
    sessionId: Buffer.from(need(f, HelloField.SESSION_ID, 16, w, 'session id')),
    access: need(f, HelloField.ACCESS, 1, w, 'access')[0]!,
    suite: need(f, HelloField.SUITE, null, w, 'suite').toString('utf8'),
    keyId: keyId ? Buffer.from(keyId) : null,
    nonce: Buffer.from(need(f, HelloField.NONCE, 32, w, 'nonce')),
  };
}

export function encodeHelloReply(r: HelloReply): Buffer {
  const parts = [
    tlv(ReplyField.IDENTITY, r.identity),
    tlv(ReplyField.SIZE, u64(r.size)),
    tlv(ReplyField.BLOCK_SIZE, u32(r.blockSize)),
    tlv(ReplyField.MAX_REQUEST, u32(r.maxRequest)),
    tlv(ReplyField.GRANTED, u8(r.granted)),
    tlv(ReplyField.SUITE, Buffer.from(r.suite, 'utf8')),
    tlv(ReplyField.NONCE, r.nonce),
  ];
  if (r.message !== null) parts.push(tlv(ReplyField.MESSAGE, Buffer.from(r.message, 'utf8')));
  return Buffer.concat(parts);
}

export function decodeHelloReply(buf: Buffer): HelloReply {
  const w = 'HELLO_REPLY';
  const f = parseTlv(buf, w);
  return {
    identity: Buffer.from(need(f, ReplyField.IDENTITY, 16, w, 'identity')),
    size: readU64(need(f, ReplyField.SIZE, 8, w, 'size'), 0, 'size'),
    blockSize: need(f, ReplyField.BLOCK_SIZE, 4, w, 'block size').readUInt32BE(0),
    maxRequest: need(f, ReplyField.MAX_REQUEST, 4, w, 'max request').readUInt32BE(0),
    granted: need(f, ReplyField.GRANTED, 1, w, 'granted')[0]!,
    suite: need(f, ReplyField.SUITE, null, w, 'suite').toString('utf8'),
    nonce: Buffer.from(need(f, ReplyField.NONCE, 32, w, 'nonce')),
    message: f.get(ReplyField.MESSAGE)?.toString('utf8') ?? null,
  };
}

/** A refusal: HELLO_REPLY with a nonzero status carries only a message. */
export function encodeRefusal(message: string): Buffer {
  return tlv(ReplyField.MESSAGE, Buffer.from(message, 'utf8'));
}

export function decodeRefusal(buf: Buffer): string {
  return parseTlv(buf, 'HELLO_REPLY').get(ReplyField.MESSAGE)?.toString('utf8') ?? 'refused';
}

export function encodeAuth(a: Auth): Buffer {
  return tlv(AuthField.PROOF, a.proof);
}

export function decodeAuth(buf: Buffer): Auth {
  return { proof: Buffer.from(need(parseTlv(buf, 'AUTH'), AuthField.PROOF, null, 'AUTH', 'proof')) };
}
