// Thin-provisioning tests (issue 16): real sparse files with deterministic data at known offsets,
// their allocated bytes from stat, and the skip-or-fail rule when the native file ops or the file
// system cannot punch holes (then there is nothing to measure).
import type { TestContext } from 'node:test';
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileOps, fileOpsText } from '../../src/engine/io/file-ops.js';
import { blocksContent } from './blocks.js';
import type { Engine } from './engine.js';
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

/** A piece of a device as a client's map shows it. */
export interface MapExtent {
  offset: number;
  length: number;
  hole: boolean;
}

/** Adjacent extents of the same kind joined (servers may cut a map anywhere). */
export function mergeExtents(extents: readonly MapExtent[]): MapExtent[] {
  const out: MapExtent[] = [];
  for (const e of extents) {
    if (e.length === 0) continue;
    const last = out[out.length - 1];
    if (last && last.hole === e.hole && last.offset + last.length === e.offset) last.length += e.length;
    else out.push({ ...e });
  }
  return out;
}

/** The data ranges of a map, as [offset, length]. */
export function dataRanges(extents: readonly MapExtent[]): Array<[number, number]> {
  return mergeExtents(extents).filter((e) => !e.hole).map((e) => [e.offset, e.length]);
}

/** Check that a map covers [0, size) without gaps or overlaps; throws naming `who`. */
export function checkCovers(extents: readonly MapExtent[], size: number, who: string): void {
  let at = 0;
  for (const e of extents) {
    if (e.offset !== at) throw new Error(`${who}: extent at ${e.offset}, expected one at ${at}: ${JSON.stringify(extents)}`);
    at += e.length;
  }
  if (at !== size) throw new Error(`${who}: the map ends at ${at}, the device at ${size}: ${JSON.stringify(extents)}`);
}

/** `nbdinfo --map --json URI` (base:allocation): a hole is type bit 0 (NBD_STATE_HOLE). */
export async function nbdinfoMap(uri: string): Promise<MapExtent[]> {
  const r = await runOk('nbdinfo', ['--map', '--json', uri], { timeoutMs: 60_000 });
  const raw = JSON.parse(r.stdout) as Array<{ offset: number; length: number; type: number }>;
  return raw.map((e) => ({ offset: e.offset, length: e.length, hole: (e.type & 1) !== 0 }));
}

/** `qemu-img map --output=json URI`: an extent with `data: false` is a hole. */
export async function qemuImgMap(uri: string): Promise<MapExtent[]> {
  const r = await runOk('qemu-img', ['map', '--output=json', uri], { timeoutMs: 60_000 });
  const raw = JSON.parse(r.stdout) as Array<{ start: number; length: number; data: boolean }>;
  return raw.map((e) => ({ offset: e.start, length: e.length, hole: !e.data }));
}

/** True when [offset, offset + length) of `path` holds only zero bytes. */
export function fileIsZero(path: string, offset: number, length: number): boolean {
  const step = 4 * M;
  const buf = Buffer.alloc(step);
  const zero = Buffer.alloc(step);
  const fd = openSync(path, 'r');
  try {
    for (let at = offset; at < offset + length; at += step) {
      const n = Math.min(step, offset + length - at);
      const got = readSync(fd, buf, 0, n, at);
      if (got !== n || !buf.subarray(0, n).equals(zero.subarray(0, n))) return false;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

/** The export node's `stats.bytesRead` (`dst node show NAME --json` on its engine). */
export async function exportBytesRead(exp: Engine, name: string): Promise<number> {
  return (await exp.show(name)).stats.bytesRead;
}
