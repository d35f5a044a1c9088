// Crash-safe file replacement: a crash at any instant leaves the old file or the new one, never a
// torn one (the config file, export identities, the mirror's region state).
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { DstError, errnoOf } from '../util/errors.js';

/**
 * Test hook DST_TEST_SAVE_CRASH=before-rename (dst(8), ENVIRONMENT): the engine kills itself with
 * SIGKILL after a save's temporary file is written and fsync'd, before the rename.
 */
export type SaveFault = 'before-rename' | null;

/** Make a directory's entries (a rename, a new file) durable. */
export async function syncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/**
 * Write `content` (text as UTF-8, or bytes) to `file` atomically: a tmp file in the same dir, fsync, rename, fsync the dir.
 * Keeps an existing file's mode (new files 0600). `where` names the operation in errors; `fault`
 * is the DST_TEST_SAVE_CRASH test hook.
 */
export async function writeFileAtomic(file: string, content: string | Buffer, opts: { where?: string; fault?: SaveFault } = {}): Promise<void> {
  const where = opts.where ?? 'config save';
  if (!isAbsolute(file)) throw new DstError('DST_ERR_INVALID', `${where}: ${file} must be an absolute path`);
  const dir = dirname(file);
  let mode = 0o600;
  try {
    mode = (await stat(file)).mode & 0o777;
  } catch {
    // new file
  }
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new DstError('DST_ERR_IO', `${where}: cannot create directory ${dir}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
  }
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (opts.fault === 'before-rename') process.kill(process.pid, 'SIGKILL');
    await rename(tmp, file);
    // the rename itself is durable only once the directory is
    await syncDir(dir);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw new DstError('DST_ERR_IO', `${where}: cannot write ${file}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
  }
}
