// Thin provisioning's file operations (issue 16) from native/fileops.c: fallocate PUNCH_HOLE and
// ZERO_RANGE, the BLKDISCARD and BLKZEROOUT ioctls, lseek SEEK_DATA/SEEK_HOLE; Node has none of them.
// Loading the addon is the only side effect; export/backend.ts decides when to use them.
//
// The rule is the cipher's: without the addon (not built, or DST_NATIVE=0) dst stays correct and
// only loses space and speed: the backend drops TRIM as a hint, writes zeroes and reports every
// range as data. A call that the file system or device does not support (unsupported()) gets the
// same fallback, call by call.
import { errnoOf } from '../../util/errors.js';
import { loadAddon } from '../../util/native-addon.js';

/**
 * native/fileops.c's exports. The promises reject, and the seeks throw, with an Error whose code
 * is the errno's name (EOPNOTSUPP arrives as 'ENOTSUP', the same number on Linux).
 */
export interface FileOps {
  /** fallocate(PUNCH_HOLE | KEEP_SIZE): the range is freed and reads zeroes */
  punchHole(fd: number, offset: number, length: number): Promise<void>;
  /** fallocate(ZERO_RANGE | KEEP_SIZE): the range reads zeroes and stays allocated */
  zeroRange(fd: number, offset: number, length: number): Promise<void>;
  /** ioctl(BLKDISCARD) on a block device: the range may be freed; its contents are then undefined */
  discard(fd: number, offset: number, length: number): Promise<void>;
  /** ioctl(BLKZEROOUT) on a block device: the range reads zeroes */
  zeroOut(fd: number, offset: number, length: number): Promise<void>;
  /** lseek(SEEK_DATA): the first data at or after offset, -1 when there is none */
  seekData(fd: number, offset: number): number;
  /** lseek(SEEK_HOLE): the first hole at or after offset (the end of the file counts as one), -1 past the end */
  seekHole(fd: number, offset: number): number;
}

export interface LoadedFileOps {
  /** null: the fallback */
  ops: FileOps | null;
  /** for `dst status` and logs: "native (…)" or "fallback: why" */
  text: string;
}

/** The addon's file operations under `env` (DST_NATIVE=0 turns them off), and what status says. */
export function loadFileOps(env: NodeJS.ProcessEnv = process.env): LoadedFileOps {
  const { addon, why } = loadAddon<FileOps>('dst_fileops', { env });
  if (addon) return { ops: addon, text: 'native (fallocate, SEEK_DATA/SEEK_HOLE, BLKDISCARD, BLKZEROOUT)' };
  return { ops: null, text: `fallback: native file ops ${why}; TRIM is dropped, zeroes are written, extents are all data` };
}

const loaded = loadFileOps();
export const fileOps: FileOps | null = loaded.ops;
export const fileOpsText: string = loaded.text;

/**
 * True when a native call failed because the file system or device cannot do it here (EINVAL:
 * the mode, or a range not aligned as a device needs): the caller falls back. Any other error
 * (EIO, ENOSPC, EBADF…) is real and goes to the client.
 */
export function unsupported(err: unknown): boolean {
  const errno = errnoOf(err);
  return errno === 'ENOTSUP' || errno === 'EOPNOTSUPP' || errno === 'EINVAL';
}
