// One disk, one export (issue 11). In this engine: a disk is identified by (device, inode) of the
// file its path resolves to, so another path, a symlink or a hard link to the same file is the
// same disk. Across processes: the export holds flock(LOCK_EX|LOCK_NB) on its serving descriptor
// (native/flock.c) while it serves; another engine that tries is refused, naming the holder's pid
// from /proc/locks. Without the native addon nothing is locked across processes (warned, and
// `dst status` says so).
import { readFile, realpath, stat } from 'node:fs/promises';
import { DstError } from '../../util/errors.js';
import { loadAddon } from '../../util/native-addon.js';
import { devMajorMinor } from './backend.js';

interface NativeFlock {
  /** flock(fd, LOCK_EX | LOCK_NB): 0, or the errno */
  lockExclusive(fd: number): number;
  readonly EWOULDBLOCK: number;
}

function load(): { flock: NativeFlock | null; text: string } {
  // Even under DST_NATIVE=0: without the lock a second engine could serve the same disk, a loss
  // of safety, not of speed, and flock(2) cannot misbehave the way the switch guards against.
  const { addon, why } = loadAddon<NativeFlock>('dst_flock', { evenWhenOff: true });
  return addon ? { flock: addon, text: 'flock (native addon)' }
    : { flock: null, text: `off: native addon ${why}; a second engine on the same disk is not refused` };
}

const loaded = load();
/** For `dst status` and logs: "flock (native addon)" or "off: why". */
export const diskLockText = loaded.text;
export const diskLockAvailable = loaded.flock !== null;

/** What identifies a disk: the file its path resolves to. */
export interface DiskId {
  real: string;
  dev: bigint;
  ino: bigint;
}

/** (device, inode) and real path of `path`, following symlinks; null when it does not exist (yet). */
export async function diskId(path: string): Promise<DiskId | null> {
  try {
    const st = await stat(path, { bigint: true });
    return { real: await realpath(path), dev: st.dev, ino: st.ino };
  } catch {
    return null;
  }
}

export function sameDisk(a: DiskId, b: DiskId): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * The pid holding a lock on (dev, ino) according to `procLocks` (the text of /proc/locks), or null.
 * Lines: "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF" (device as hex major:minor);
 * "1: -> FLOCK …" lines are waiters, not holders.
 */
export function lockHolder(procLocks: string, id: Pick<DiskId, 'dev' | 'ino'>): number | null {
  const { major, minor } = devMajorMinor(id.dev);
  for (const line of procLocks.split('\n')) {
    const m = /^\d+:\s+(?!->)\S+\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/i.exec(line);
    if (m && parseInt(m[2]!, 16) === major && parseInt(m[3]!, 16) === minor && BigInt(m[4]!) === id.ino) return Number(m[1]);
  }
  return null;
}

/**
 * Lock the serving descriptor `fd` of `disk` for this process. Throws DST_ERR_BUSY naming the
 * holder's pid when another open file holds it. Returns false (nothing locked) without the addon.
 */
export async function lockDisk(fd: number, disk: string, node: string): Promise<boolean> {
  if (loaded.flock === null) return false;
  const errno = loaded.flock.lockExclusive(fd);
  if (errno === 0) return true;
  if (errno !== loaded.flock.EWOULDBLOCK) {
    throw new DstError('DST_ERR_IO', `node ${node}: cannot lock disk ${disk} (flock errno ${errno})`);
  }
  const id = await diskId(disk);
  const pid = id === null ? null : lockHolder(await readFile('/proc/locks', 'utf8').catch(() => ''), id);
  const who = pid === null ? 'another process' : pid === process.pid ? `this engine (pid ${pid})` : `pid ${pid}`;
  throw new DstError('DST_ERR_BUSY', `node ${node}: disk ${disk} is already served by ${who}, which holds its lock: one disk, one export`,
    { errno: 'EBUSY' });
}
