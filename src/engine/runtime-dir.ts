// The runtime dir (the control socket's directory), the state dir and the control socket file
// (DESIGN §2): created with safe modes, refused when someone else could tamper with them.
import { execFile } from 'node:child_process';
import { chmod, chown, lstat, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DstError, errnoOf } from '../util/errors.js';
import { removeStaleSocket } from './io/unix-socket.js';

const myUid = (): number => process.getuid?.() ?? 0;

/** --group NAME|GID → gid; names resolved with `getent group`. */
export async function resolveGroup(spec: string): Promise<number> {
  const s = spec.trim();
  if (/^\d+$/.test(s)) return Number(s);
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(s)) {
    throw new DstError('DST_ERR_INVALID', `--group ${JSON.stringify(spec)}: not a group name or number`);
  }
  const out = await new Promise<string | null>((resolve) => {
    execFile('getent', ['group', s], { timeout: 5000 }, (err, stdout) => resolve(err ? null : stdout));
  });
  const gid = out === null ? NaN : Number(out.split('\n')[0]!.split(':')[2]);
  if (!Number.isInteger(gid)) throw new DstError('DST_ERR_NOT_FOUND', `--group ${s}: no such group (getent group ${s})`);
  return gid;
}

async function statOrNull(path: string) {
  try {
    return await lstat(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw new DstError('DST_ERR_INVALID', `${path}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
  }
}

/**
 * Create the runtime dir 0700 (0750 owned by `gid` when given) or check an existing one: a real
 * directory, owned by this user, not group- or world-writable.
 */
export async function prepareRuntimeDir(dir: string, gid: number | null): Promise<void> {
  const mode = gid === null ? 0o700 : 0o750;
  let st = await statOrNull(dir);
  if (!st) {
    await mkdir(dirname(dir), { recursive: true });
    try {
      await mkdir(dir, { mode });
      await chmod(dir, mode); // umask
      if (gid !== null) await chown(dir, myUid(), gid);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') {
        throw new DstError('DST_ERR_INVALID', `runtime dir ${dir}: cannot create it: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
      }
    }
    st = await statOrNull(dir);
    if (!st) throw new DstError('DST_ERR_INVALID', `runtime dir ${dir}: vanished while creating it`, { errno: 'ENOENT' });
  }
  if (st.isSymbolicLink()) throw new DstError('DST_ERR_INVALID', `runtime dir ${dir} is a symbolic link; refusing it`);
  if (!st.isDirectory()) throw new DstError('DST_ERR_INVALID', `runtime dir ${dir} exists and is not a directory`, { errno: 'ENOTDIR' });
  if (st.uid !== myUid()) {
    throw new DstError('DST_ERR_INVALID', `runtime dir ${dir} is owned by uid ${st.uid}, not by this user (uid ${myUid()}); refusing it`, { errno: 'EPERM' });
  }
  if ((st.mode & 0o022) !== 0) {
    throw new DstError('DST_ERR_INVALID', `runtime dir ${dir} is group- or world-writable (mode ${(st.mode & 0o777).toString(8)}); chmod 700 it or remove it`, { errno: 'EPERM' });
  }
  if (gid !== null && (st.gid !== gid || (st.mode & 0o050) !== 0o050)) {
    try {
      await chown(dir, myUid(), gid);
      await chmod(dir, (st.mode & 0o700) | 0o050);
    } catch (err) {
      throw new DstError('DST_ERR_INVALID', `runtime dir ${dir}: cannot give it to group ${gid}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
    }
  }
}

/** Create the state dir 0700 if missing; it must be a directory. */
export async function prepareStateDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new DstError('DST_ERR_INVALID', `state dir ${dir}: cannot create it: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
  }
  const st = await statOrNull(dir);
  if (!st || !(st.isDirectory() || st.isSymbolicLink())) {
    throw new DstError('DST_ERR_INVALID', `state dir ${dir} is not a directory`, { errno: 'ENOTDIR' });
  }
}

/** Before listening on the control socket: a stale one is removed, a live one refused (another engine). */
export function clearStaleSocket(path: string): Promise<'absent' | 'removed'> {
  return removeStaleSocket(path, { what: 'control socket', live: 'another engine is running on' });
}
