// Temporary directories for tests: short paths under /tmp (unix socket paths must stay under
// 107 bytes: <tmp>/run/nbd/<32-char name>.sock fits easily), removed when the test ends.
// DST_KEEP_TMP=1 keeps them for a post-mortem (their paths are printed to stderr).
import { after, type TestContext } from 'node:test';
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Register fn to run when the test (t) or, without t, the current file's tests end. */
export function onCleanup(t: TestContext | undefined, fn: () => void | Promise<void>): void {
  if (t) t.after(fn);
  else after(fn);
}

/**
 * mkdtemp under /tmp ("/tmp/dst-XXXXXX", 0700), removed recursively after the test.
 * Pass the test context to tie it to that test; without it, it lives until the file's tests end.
 */
export function tmpDir(t?: TestContext, prefix = 'dst-'): string {
  if (prefix.includes('/')) throw new Error(`tmpDir: prefix ${JSON.stringify(prefix)} must not contain /`);
  const dir = mkdtempSync(join('/tmp', prefix));
  onCleanup(t, () => removeTmp(dir));
  return dir;
}

export function removeTmp(dir: string): void {
  if (process.env.DST_KEEP_TMP === '1') {
    process.stderr.write(`DST_KEEP_TMP: kept ${dir}\n`);
    return;
  }
  if (!dir.startsWith('/tmp/')) throw new Error(`removeTmp: refusing to remove ${dir} (not under /tmp)`);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
}

/** Create (or extend/shrink to) a sparse file of `size` bytes; parent dirs are created. Returns path. */
export function sparseFile(path: string, size: number): string {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'a+');
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
  return path;
}
