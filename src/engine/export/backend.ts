// The export's storage backend: a dumb layer over one file or block device (style.md §1:
// "backends stay dumb"). Every check (range, permission, flags) happened before this, in
// validate.ts; here we only do positioned I/O and report the real errno.
//
// Filters (filters.ts) share this interface and hold only `next`.
//
// Two ways to do the I/O (bench/README.md has the profiles behind this):
// - A disk in memory (a regular file on tmpfs or ramfs, told by statfs): positioned I/O there is
//   a memcpy that cannot block, so calls up to INLINE_MAX bytes run on the event loop
//   (fs.readSync/fs.writeSync). Handing a 4 KiB read to a libuv pool thread costs two thread
//   wake-ups and context switches (about 3 per request on a loaded 2-core machine), an order of
//   magnitude more than the copy, and splits one burst of requests into many completions.
//   The promise still settles asynchronously (a microtask), as for the pool.
// - Any other disk: callback-style fs.read/fs.write on the libuv pool (bin/dst sizes it with
//   UV_THREADPOOL_SIZE before the first file operation). FLUSH (fdatasync) always goes there.
//
// TRIM, WRITE_ZEROES and extents use the native file ops (io/file-ops.ts) where they exist and the
// disk supports them, so that space is freed, zeroes are not written and holes are seen (issue
// 16); otherwise TRIM is an accepted hint, zeroes are written and everything is data.
import fs from 'node:fs';
import { readFile } from 'node:fs/promises';
import { DstError, errnoOf } from '../../util/errors.js';
import { POOL_MIN, allocPayload, releasePayload } from '../io/payload-pool.js';
import { fileOps, unsupported, type FileOps } from '../io/file-ops.js';
import { ExtentFlag, MAX_EXTENTS, ZeroFlag } from '../../protocol/thin.js';

/** A piece of the disk and its NBD base:allocation flags (ExtentFlag bits: a hole 1, reads zeroes 2). */
export interface Extent {
  offset: number;
  length: number;
  flags: number;
}

/** A file's hole: not allocated, reads zeroes. */
export const HOLE_FLAGS = ExtentFlag.HOLE | ExtentFlag.ZERO;

/** One backend layer. Promises reject with the real system error (err.code = 'EIO', ...). */
export interface Backend {
  read(offset: number, length: number): Promise<Buffer>;
  /** fua: durable before the promise resolves */
  write(offset: number, data: Buffer, fua: boolean): Promise<void>;
  /** fdatasync; concurrent flushes are merged (a flush requested while one runs waits for the next) */
  flush(): Promise<void>;
  /** Frees the range where the disk can (it may then read zeroes), else an accepted hint (no-op); fua: what it freed is durable before the promise resolves. */
  trim(offset: number, length: number, fua: boolean): Promise<void>;
  /** The range reads zeroes; flags: ZeroFlag bits. */
  writeZeroes(offset: number, length: number, fua: boolean, flags: number): Promise<void>;
  /** The range as data and holes, in order, from `offset`: all of it, or a prefix of at most MAX_EXTENTS pieces. */
  extents(offset: number, length: number): Promise<Extent[]>;
  /**
   * WRITE_ZEROES with FAST_ZERO is honoured here (zeroing without writing zeroes works on this
   * disk): what HELLO_REPLY's FAST_ZERO feature says.
   */
  fastZero(): boolean;
  /** Close after the calls already issued finish. Safe to call more than once. */
  close(): Promise<void>;
}

/** Largest call done on the event loop for a memory-backed disk (larger ones use the pool). */
export const INLINE_MAX = 1024 * 1024;

/**
 * Read buffers under POOL_MIN bytes are cut from shared slabs of SLAB_SIZE bytes instead of
 * being one ArrayBuffer each (a malloc, external-memory accounting and sweeping per read); a
 * slab is freed by the GC once every read cut from it is gone. Larger ones come from the
 * payload pool and go back to it once sent.
 */
const SLAB_SIZE = 256 * 1024;
let slab: Buffer | null = null;
let slabUsed = 0;

/** An uninitialised buffer of n bytes for a read (the caller fills all of it or drops it). */
function readBuffer(n: number): Buffer {
  if (n >= POOL_MIN) return allocPayload(n);
  if (slab === null || slabUsed + n > SLAB_SIZE) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + n);
  slabUsed += (n + 7) & ~7; // keep slices 8-byte aligned
  return out;
}

/** statfs f_type of the file systems whose files live in memory. */
const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

/** Bounded chunk for WRITE_ZEROES: one shared, never-written zero buffer. */
export const ZERO_CHUNK = 1024 * 1024;
let zeroBuffer: Buffer | null = null;
/** The shared read-only buffer of ZERO_CHUNK zeroes that zeroing writes come from. */
export function zeros(): Buffer {
  zeroBuffer ??= Buffer.alloc(ZERO_CHUNK);
  return zeroBuffer;
}

/** An error as Node's system errors are (err.code = 'EIO', ...): what backend calls reject with. */
export function sysError(code: string, message: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

type Done = (err: NodeJS.ErrnoException | null) => void;

/** pread until `buf` is full (short reads handled); EOF before that → EIO. */
function preadAll(fd: number, buf: Buffer, position: number, cb: Done): void {
  let done = 0;
  const step = (): void => {
    fs.read(fd, buf, done, buf.length - done, position + done, (err, n) => {
      if (err) return cb(err);
      if (n === 0) return cb(sysError('EIO', `unexpected end of disk at byte ${position + done} (did it shrink?)`));
      done += n;
      if (done < buf.length) step();
      else cb(null);
    });
  };
  if (buf.length === 0) cb(null);
  else step();
}

/** pwrite until all of `buf` is written (short writes handled). */
function pwriteAll(fd: number, buf: Buffer, position: number, cb: Done): void {
  let done = 0;
  const step = (): void => {
    fs.write(fd, buf, done, buf.length - done, position + done, (err, n) => {
      if (err) return cb(err);
      if (n === 0) return cb(sysError('EIO', `write made no progress at byte ${position + done}`));
      done += n;
      if (done < buf.length) step();
      else cb(null);
    });
  };
  if (buf.length === 0) cb(null);
  else step();
}

export interface DiskInfo {
  /** size of the file or block device in bytes */
  size: number;
  blockDevice: boolean;
}

/** pread until `buf` is full, on the calling thread. EOF before that → EIO. Throws the system error. */
function preadAllSync(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw sysError('EIO', `unexpected end of disk at byte ${position + done} (did it shrink?)`);
    done += n;
  }
}

/** pwrite all of `buf`, on the calling thread. Throws the system error. */
function pwriteAllSync(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = fs.writeSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw sysError('EIO', `write made no progress at byte ${position + done}`);
    done += n;
  }
}

/** True when `fd` is a regular file on a file system kept in memory (tmpfs, ramfs). */
function inMemory(path: string, info: DiskInfo): Promise<boolean> {
  if (info.blockDevice) return Promise.resolve(false);
  return new Promise((resolve) => {
    fs.statfs(path, (err, st) => resolve(!err && (st.type === TMPFS_MAGIC || st.type === RAMFS_MAGIC)));
  });
}

/** Linux dev_t → major/minor (glibc's gnu_dev_major/minor encoding). */
export function devMajorMinor(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n));
  return { major, minor };
}

async function statFd(fd: number, path: string): Promise<DiskInfo> {
  const st = await new Promise<fs.BigIntStats>((resolve, reject) =>
    fs.fstat(fd, { bigint: true }, (err, s) => (err ? reject(err) : resolve(s))));
  if (st.isBlockDevice()) return { size: await blockDeviceSize(st.rdev, path), blockDevice: true };
  if (st.isFile()) return { size: Number(st.size), blockDevice: false };
  throw new DstError('DST_ERR_INVALID', `disk ${path} is neither a regular file nor a block device`, { errno: 'EINVAL' });
}

/** The size of the block device `rdev` (at `path`, for messages): /sys/dev/block/MAJ:MIN/size × 512. */
export async function blockDeviceSize(rdev: bigint, path: string): Promise<number> {
  const { major, minor } = devMajorMinor(rdev);
  const sys = `/sys/dev/block/${major}:${minor}/size`;
  let text: string;
  try {
    text = await readFile(sys, 'utf8');
  } catch (err) {
    throw new DstError('DST_ERR_IO', `cannot size block device ${path}: reading ${sys}: ${(err as Error).message}`,
      { errno: errnoOf(err), cause: err });
  }
  const sectors = Number(text.trim());
  if (!Number.isSafeInteger(sectors) || sectors < 0) {
    throw new DstError('DST_ERR_IO', `cannot size block device ${path}: ${sys} holds ${JSON.stringify(text.trim())}`);
  }
  return sectors * 512;
}

function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

/**
 * [offset, offset + length) of the file `fd` as extents, from SEEK_DATA/SEEK_HOLE: at most
 * MAX_EXTENTS of them (a prefix of the range), so one request walks a bounded part of the file.
 */
function fileExtents(ops: FileOps, fd: number, offset: number, length: number): Extent[] {
  const end = offset + length;
  const out: Extent[] = [];
  const add = (from: number, to: number, hole: boolean): void => {
    if (to > from) out.push({ offset: from, length: to - from, flags: hole ? HOLE_FLAGS : 0 });
  };
  for (let at = offset; at < end && out.length < MAX_EXTENTS - 1;) {
    const data = ops.seekData(fd, at);
    if (data === -1 || data >= end) {
      add(at, end, true);
      break;
    }
    add(at, data, true);
    const hole = ops.seekHole(fd, data);
    const stop = hole > data ? Math.min(hole, end) : end; // never a step that makes no progress
    add(data, stop, false);
    at = stop;
  }
  return out;
}

/**
 * Can this disk zero without writing zeroes (so FAST_ZERO is honoured)? A file: a hole punched
 * past its end (changes nothing) succeeds; a block device: the kernel zeroes without writing
 * (queue/write_zeroes_max_bytes > 0, what fallocate PUNCH_HOLE on it needs).
 */
async function canZeroFast(ops: FileOps, fd: number, info: DiskInfo): Promise<boolean> {
  if (info.blockDevice) {
    const st = await new Promise<fs.BigIntStats | null>((resolve) => fs.fstat(fd, { bigint: true }, (err, s) => resolve(err ? null : s)));
    if (st === null) return false;
    const { major, minor } = devMajorMinor(st.rdev);
    const text = await readFile(`/sys/dev/block/${major}:${minor}/queue/write_zeroes_max_bytes`, 'utf8').catch(() => '0');
    return Number(text.trim()) > 0;
  }
  // any failure only means FAST_ZERO is not offered: a real disk error shows on real I/O
  return ops.punchHole(fd, info.size, 1).then(() => true, () => false);
}

/** The file/block-device backend: one fd for ordinary I/O, a second O_DSYNC fd for FUA writes. */
export class FileBackend implements Backend {
  private inflight = 0;
  private idleWaiters: (() => void)[] = [];
  private closing: Promise<void> | null = null;
  private syncing: Promise<void> | null = null;
  private nextSync: Promise<void> | null = null;
  /** number of fdatasync calls issued (tests check that flushes merge) */
  syncCount = 0;

  private constructor(readonly path: string, /** the serving descriptor (the disk lock is taken on it) */ readonly fd: number, private readonly dsyncFd: number | null,
    readonly info: DiskInfo, readonly inline: boolean, private readonly ops: FileOps | null, private readonly zeroesFast: boolean) {}

  /**
   * Open the disk (read-only: no write fds). Throws the system error or a DstError.
   * opts.inline: do small calls on the event loop (default: when the disk is in memory).
   * opts.fileOps: the native file ops, null for the fallback (default: io/file-ops.ts's).
   */
  static async open(path: string, readonly: boolean, opts: { inline?: boolean; fileOps?: FileOps | null } = {}): Promise<FileBackend> {
    const fd = await openFd(path, readonly ? fs.constants.O_RDONLY : fs.constants.O_RDWR);
    let dsyncFd: number | null = null;
    try {
      const info = await statFd(fd, path);
      if (!readonly) dsyncFd = await openFd(path, fs.constants.O_WRONLY | fs.constants.O_DSYNC);
      const inline = opts.inline ?? await inMemory(path, info);
      const ops = opts.fileOps === undefined ? fileOps : opts.fileOps;
      const fast = ops !== null && !readonly && await canZeroFast(ops, fd, info);
      return new FileBackend(path, fd, dsyncFd, info, inline, ops, fast);
    } catch (err) {
      await closeFd(fd);
      if (dsyncFd !== null) await closeFd(dsyncFd);
      throw err;
    }
  }

  private begin(): void {
    if (this.closing) throw sysError('ESHUTDOWN', `disk ${this.path} is closing`);
    this.inflight++;
  }

  private end(): void {
    if (--this.inflight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private run<T>(fn: (cb: (err: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.begin();
      let settled = false;
      const cb = (err: NodeJS.ErrnoException | null, value?: T): void => {
        if (settled) return;
        settled = true;
        this.end();
        if (err) reject(err);
        else resolve(value as T);
      };
      try {
        fn(cb);
      } catch (err) {
        cb(err as NodeJS.ErrnoException);
      }
    });
  }

  private writeFd(fua: boolean): number {
    // read-only ⇔ no O_DSYNC fd: refuse every write with EROFS (not EBADF from the O_RDONLY fd)
    if (this.dsyncFd === null) throw sysError('EROFS', `disk ${this.path} is open read-only`);
    return fua ? this.dsyncFd : this.fd;
  }

  /** Run a call on the event loop (memory-backed disk): same accounting, errors as rejections. */
  private runInline<T>(fn: () => T): Promise<T> {
    if (this.closing) return Promise.reject(sysError('ESHUTDOWN', `disk ${this.path} is closing`));
    this.inflight++;
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err);
    } finally {
      this.end();
    }
  }

  /**
   * Buffers of POOL_MIN bytes or more come from the payload pool: whoever sends the reply may
   * give them back with releasePayload() once the socket is done with them.
   */
  read(offset: number, length: number): Promise<Buffer> {
    const buf = readBuffer(length);
    if (this.inline && length <= INLINE_MAX) {
      return this.runInline(() => { preadAllSync(this.fd, buf, offset); return buf; });
    }
    return this.run<Buffer>((cb) => preadAll(this.fd, buf, offset, (err) => cb(err, buf)));
  }

  /**
   * The backend is the last user of a WRITE payload: once pwrite returned, its buffer goes back
   * to the payload pool (a no-op for buffers the pool did not lend).
   */
  write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    if (this.inline && data.length <= INLINE_MAX) {
      return this.runInline(() => {
        try {
          pwriteAllSync(this.writeFd(fua), data, offset);
        } finally {
          releasePayload(data);
        }
      });
    }
    return this.run<void>((cb) => {
      let fd: number;
      try {
        fd = this.writeFd(fua);
      } catch (err) {
        releasePayload(data);
        throw err;
      }
      pwriteAll(fd, data, offset, (err) => {
        releasePayload(data);
        cb(err);
      });
    });
  }

  flush(): Promise<void> {
    if (this.syncing === null) return this.startSync();
    // One is running: it may have started before this caller's writes completed, so this caller
    // waits for the next one, which every flush requested meanwhile shares.
    if (this.nextSync === null) {
      const running = this.syncing;
      this.nextSync = running.then(() => {}, () => {}).then(() => {
        this.nextSync = null;
        return this.startSync();
      });
    }
    return this.nextSync;
  }

  private startSync(): Promise<void> {
    this.syncCount++;
    const p: Promise<void> = this.run<void>((cb) => fs.fdatasync(this.fd, cb)).finally(() => {
      if (this.syncing === p) this.syncing = null;
    });
    this.syncing = p;
    return p;
  }

  /** A native call, counted in flight like the others (close() waits for it). */
  private native(call: () => Promise<void>): Promise<void> {
    return this.run<void>((cb) => { call().then(() => cb(null), cb); });
  }

  /**
   * A file: punch a hole; a block device: BLKDISCARD. Where neither can be done, the hint is
   * dropped (nothing changed: nothing to make durable). FUA: fdatasync after the punch or discard.
   */
  async trim(offset: number, length: number, fua: boolean): Promise<void> {
    const fd = this.writeFd(false);
    const ops = this.ops;
    if (ops === null || length === 0) return;
    try {
      await this.native(() => this.info.blockDevice ? ops.discard(fd, offset, length) : ops.punchHole(fd, offset, length));
    } catch (err) {
      if (!unsupported(err)) throw err;
      return;
    }
    if (fua) await this.flush();
  }

  /**
   * Zeroes without writing them where the disk can: a file punches a hole, or with NO_HOLE zeroes
   * the range in place (ZERO_RANGE); a block device uses BLKZEROOUT. Else zeroes are written, or
   * with FAST_ZERO the call fails at once with ENOTSUP. FUA: durable (fdatasync) before it resolves.
   */
  async writeZeroes(offset: number, length: number, fua: boolean, flags: number): Promise<void> {
    this.writeFd(fua); // a read-only disk: EROFS, whatever the flags
    if (length === 0) return;
    if (await this.zeroFast(offset, length, flags)) {
      if (fua) await this.flush();
      return;
    }
    if ((flags & ZeroFlag.FAST_ZERO) !== 0) {
      throw new DstError('DST_ERR_IO', `disk ${this.path}: zeroing ${length} bytes at ${offset} would mean writing zeroes (FAST_ZERO): ${this.ops === null ? 'no native file ops' : 'not supported by the disk'}`,
        { errno: 'ENOTSUP' });
    }
    return this.writeZeroBytes(offset, length, fua);
  }

  /** Zero the range without writing zeroes: true when done, false when the disk cannot here. */
  private async zeroFast(offset: number, length: number, flags: number): Promise<boolean> {
    const ops = this.ops;
    if (ops === null) return false;
    const noHole = (flags & ZeroFlag.NO_HOLE) !== 0;
    const fd = this.fd;
    let call: () => Promise<void>;
    if (!this.info.blockDevice) {
      call = noHole ? () => ops.zeroRange(fd, offset, length) : () => ops.punchHole(fd, offset, length);
    } else if ((flags & ZeroFlag.FAST_ZERO) === 0) {
      call = () => ops.zeroOut(fd, offset, length);
    } else {
      // BLKZEROOUT may write the zeroes itself, in the kernel; fallocate(PUNCH_HOLE) on a block
      // device is the kernel's zeroing without that fallback (EOPNOTSUPP when the device cannot
      // zero by itself), but it may unmap the range: not with NO_HOLE.
      if (noHole) return false;
      call = () => ops.punchHole(fd, offset, length);
    }
    try {
      await this.native(call);
      return true;
    } catch (err) {
      if (unsupported(err)) return false;
      throw err;
    }
  }

  /** The range as holes and data (SEEK_DATA/SEEK_HOLE); a block device, or without native file ops, is all data. */
  extents(offset: number, length: number): Promise<Extent[]> {
    const ops = this.ops;
    // On the event loop: lseek finds extents in the file system's in-memory tree; it only waits
    // for the inode's lock while a write or fallocate on the same file holds it.
    return this.runInline(() => {
      if (length === 0) return [];
      if (ops === null || this.info.blockDevice) return [{ offset, length, flags: 0 }];
      return fileExtents(ops, this.fd, offset, length);
    });
  }

  /** Write zeroes from the shared zero buffer, in bounded chunks. */
  private writeZeroBytes(offset: number, length: number, fua: boolean): Promise<void> {
    if (this.inline && length <= INLINE_MAX) {
      return this.runInline(() => {
        const fd = this.writeFd(fua);
        const z = zeros();
        for (let done = 0; done < length; done += z.length) {
          const n = Math.min(z.length, length - done);
          pwriteAllSync(fd, n === z.length ? z : z.subarray(0, n), offset + done);
        }
      });
    }
    return this.run<void>((cb) => {
      const fd = this.writeFd(fua);
      const z = zeros();
      let done = 0;
      const step = (): void => {
        if (done >= length) return cb(null);
        const n = Math.min(z.length, length - done);
        pwriteAll(fd, n === z.length ? z : z.subarray(0, n), offset + done, (err) => {
          if (err) return cb(err);
          done += n;
          step();
        });
      };
      step();
    });
  }

  fastZero(): boolean {
    return this.zeroesFast;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.inflight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      await closeFd(this.fd);
      if (this.dsyncFd !== null) await closeFd(this.dsyncFd);
    })();
    return this.closing;
  }
}
