// Capture files of the fault proxy: every chunk the proxy received from either side (and every chunk
// it injected), in the order it handled them.
//
// Format (all integers big-endian):
//   file header, 8 bytes:  "DSTCAP" (6 ASCII bytes) + version u16 (= 1)
//   then per chunk, a 9-byte record header followed by the chunk's bytes:
//     direction      u8   bit 0: 0 = up (client → target), 1 = down (target → client)
//                         bit 7 (0x80): the proxy injected these bytes (`inject`), they were not received
//                         other bits are 0
//     connection id  u32  the proxy's connection number (1, 2, …; 0 = none)
//     length         u32  number of bytes that follow
//     bytes          length bytes, exactly as received from the source socket (before any corruption)
// A file is written record by record with synchronous writes, so a reader never sees a torn record
// from a running proxy unless the process died in the middle of one write.
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { DstError } from '../util/errors.js';

export type Direction = 'up' | 'down';

export const CAPTURE_MAGIC = Buffer.from('DSTCAP', 'ascii');
export const CAPTURE_VERSION = 1;
export const CAPTURE_FILE_HEADER_BYTES = 8;
export const CAPTURE_RECORD_HEADER_BYTES = 9;
const DIR_DOWN = 0x01;
const FLAG_INJECTED = 0x80;

export interface CaptureRecord {
  direction: Direction;
  connection: number;
  /** true when the proxy injected these bytes rather than receiving them */
  injected: boolean;
  data: Buffer;
}

function fileHeader(): Buffer {
  const h = Buffer.alloc(CAPTURE_FILE_HEADER_BYTES);
  CAPTURE_MAGIC.copy(h, 0);
  h.writeUInt16BE(CAPTURE_VERSION, 6);
  return h;
}

/** Encode one record (header + bytes) as it appears in a capture file. */
export function encodeCaptureRecord(direction: Direction, connection: number, data: Buffer, injected = false): Buffer {
  const h = Buffer.alloc(CAPTURE_RECORD_HEADER_BYTES);
  h.writeUInt8((direction === 'down' ? DIR_DOWN : 0) | (injected ? FLAG_INJECTED : 0), 0);
  h.writeUInt32BE(connection >>> 0, 1);
  h.writeUInt32BE(data.length, 5);
  return Buffer.concat([h, data]);
}

/** Does this buffer start like a capture file? */
export function isCapture(buf: Buffer): boolean {
  return buf.length >= CAPTURE_FILE_HEADER_BYTES && buf.subarray(0, 6).equals(CAPTURE_MAGIC);
}

/** Appends records to a capture file (created or truncated on open). Synchronous: bounded memory, ordered. */
export class CaptureWriter {
  readonly path: string;
  private fd: number | null;
  private written = 0;

  constructor(path: string) {
    this.path = path;
    try {
      this.fd = openSync(path, 'w', 0o600);
    } catch (err) {
      throw new DstError('DST_ERR_IO', `fault-proxy: cannot open capture file ${path}: ${(err as Error).message}`,
        { cause: err, errno: (err as { code?: string }).code ?? null });
    }
    this.writeAll(fileHeader());
  }

  /** Bytes written so far, file header included. */
  get bytes(): number {
    return this.written;
  }

  get closed(): boolean {
    return this.fd === null;
  }

  record(direction: Direction, connection: number, data: Buffer, injected = false): void {
    if (this.fd === null) return;
    this.writeAll(encodeCaptureRecord(direction, connection, data, injected));
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    closeSync(fd);
  }

  private writeAll(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) {
      try {
        off += writeSync(this.fd!, buf, off, buf.length - off);
      } catch (err) {
        // A full disk must not take the proxy down: stop capturing and say so once.
        this.close();
        throw new DstError('DST_ERR_IO', `fault-proxy: writing capture file ${this.path} failed: ${(err as Error).message}`,
          { cause: err, errno: (err as { code?: string }).code ?? null });
      }
    }
    this.written += buf.length;
  }
}

/** Decode a whole capture file's bytes. A malformed or truncated file → DstError('DST_ERR_BAD_FRAME'). */
export function parseCapture(buf: Buffer, what = 'capture'): CaptureRecord[] {
  if (!isCapture(buf)) {
    throw new DstError('DST_ERR_BAD_FRAME', `${what}: not a dst capture file (missing "DSTCAP" header)`);
  }
  const version = buf.readUInt16BE(6);
  if (version !== CAPTURE_VERSION) {
    throw new DstError('DST_ERR_BAD_FRAME', `${what}: capture version ${version} not supported (expected ${CAPTURE_VERSION})`);
  }
  const out: CaptureRecord[] = [];
  let off = CAPTURE_FILE_HEADER_BYTES;
  while (off < buf.length) {
    if (buf.length - off < CAPTURE_RECORD_HEADER_BYTES) {
      throw new DstError('DST_ERR_BAD_FRAME', `${what}: truncated record header at offset ${off}`);
    }
    const dir = buf.readUInt8(off);
    if ((dir & ~(DIR_DOWN | FLAG_INJECTED)) !== 0) {
      throw new DstError('DST_ERR_BAD_FRAME', `${what}: bad direction byte 0x${dir.toString(16)} at offset ${off}`);
    }
    const connection = buf.readUInt32BE(off + 1);
    const length = buf.readUInt32BE(off + 5);
    const start = off + CAPTURE_RECORD_HEADER_BYTES;
    if (buf.length - start < length) {
      throw new DstError('DST_ERR_BAD_FRAME', `${what}: truncated record at offset ${off} (${length} bytes declared, ${buf.length - start} present)`);
    }
    out.push({
      direction: dir & DIR_DOWN ? 'down' : 'up',
      connection,
      injected: (dir & FLAG_INJECTED) !== 0,
      data: Buffer.from(buf.subarray(start, start + length)),
    });
    off = start + length;
  }
  return out;
}

/** Read a capture file back into its records. */
export function readCapture(path: string): CaptureRecord[] {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    const code = (err as { code?: string }).code ?? null;
    throw new DstError(code === 'ENOENT' ? 'DST_ERR_NOT_FOUND' : 'DST_ERR_IO',
      `cannot read capture file ${path}: ${(err as Error).message}`, { cause: err, errno: code });
  }
  return parseCapture(buf, path);
}

export interface CaptureFilter {
  direction?: Direction;
  connection?: number;
  /** include injected records (default true) */
  injected?: boolean;
}

/** The records' bytes concatenated in order, optionally only one direction / connection. */
export function captureBytes(records: readonly CaptureRecord[], filter: CaptureFilter = {}): Buffer {
  return Buffer.concat(records
    .filter((r) => (filter.direction === undefined || r.direction === filter.direction)
      && (filter.connection === undefined || r.connection === filter.connection)
      && (filter.injected !== false || !r.injected))
    .map((r) => r.data));
}
