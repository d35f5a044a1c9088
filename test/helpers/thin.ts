// Thin-provisioning tests (issue 16): real sparse files with deterministic data at known offsets,
// their allocated bytes from stat, and the skip-or-fail rule when the native file ops or the file
// system cannot punch holes (then there is nothing to measure).
import type { TestContext } from 'node:test';
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileOps, fileOpsText } from '../../src/engine/io/file-ops.js';
import { blocksContent } from './blocks.js';
import { sparseFile, tmpDir } from './tmp.js';
import { requireRoot, requireTool, run, runOk, skipOrFail } from './tools.js';

export const K = 1024;
export const M = 1024 * K;

/** Bytes the file system allocated to `path` (st_blocks is in 512-byte units). */
export function allocated(path: string): number {
  return statSync(path).blocks * 512;
}

/** The deterministic bytes written at `offset` (blocks numbered from offset / 4096, version 1). */
export function dataAt(offset: number, length: number): Buffer {
  return blocksContent(offset / 4096, 1, length / 4096);
}

/**
 * A sparse file of `size` bytes in a fresh temporary directory holding dataAt(o, length) at each
 * offset in `offsets` (4 KiB aligned), fsynced, so its allocation is what stat reports.
 */
export function thinFile(t: TestContext, size: number, offsets: readonly number[], length: number): string {
  const path = sparseFile(join(tmpDir(t, 'dst-thin-'), 'disk.img'), size);
  const fd = openSync(path, 'r+');
  try {
    for (const o of offsets) writeSync(fd, dataAt(o, length), 0, length, o);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return path;
}

/**
 * True when the native file ops are loaded and punch holes in thinFile()'s files (under /tmp);
 * otherwise skips (or fails under CI) saying which is missing.
 */
export async function requirePunchHole(t: TestContext): Promise<boolean> {
  if (fileOps === null) return skipOrFail(t, `native file ops unavailable: ${fileOpsText} (npm install builds them with node-gyp)`);
  const probe = thinFile(t, 64 * K, [0], 64 * K);
  const fd = openSync(probe, 'r+');
  try {
    await fileOps.punchHole(fd, 0, 64 * K);
    fsyncSync(fd);
    if (fstatSync(fd).blocks === 0) return true;
    return skipOrFail(t, 'punching a hole freed nothing on the file system of /tmp');
  } catch (err) {
    return skipOrFail(t, `the file system of /tmp cannot punch holes: ${(err as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * A loop device over `file` that accepts discards, detached after the test; null (skipped, or
 * failed under CI) without root, losetup or discard support.
 */
export async function loopDevice(t: TestContext, file: string): Promise<string | null> {
  if (!requireRoot(t, 'a loop device needs root (losetup)') || !requireTool(t, 'losetup', 'util-linux')) return null;
  const dev = (await runOk('losetup', ['--find', '--show', file], { timeoutMs: 30_000 })).stdout.trim();
  t.after(async () => { await run('losetup', ['--detach', dev], { timeoutMs: 30_000 }); });
  const discardMax = Number(readFileSync(`/sys/block/${basename(dev)}/queue/discard_max_bytes`, 'utf8'));
  if (!(discardMax > 0)) {
    skipOrFail(t, `${dev} (losetup over ${file}) takes no discards: discard_max_bytes is ${discardMax}`);
    return null;
  }
  return dev;
}
