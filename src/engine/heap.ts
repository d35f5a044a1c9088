// Giving memory back below JavaScript: the one module that reaches into V8 (a garbage collection on
// demand, made callable with --expose-gc set at run time) and glibc (malloc_trim, native/cipher.c).
// Both were measured to pay (Issue 13): without the full collection an export's RSS stayed ~40 MiB
// up for over 5 s after a client with 192 MiB of unread READs left (with it: back in ~0.5 s);
// without the young collections a node:crypto worker held ~80 MiB more and ran ~30 % slower.
// Allocating and freeing a 16 MiB block at worker start (to raise glibc's trim threshold) did not
// pay once the collections ran and was dropped. `dst status` shows what is active (heapText).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { mallocTrim, nativeCipher } from '../protocol/native-cipher.js';

export type Collect = (o?: { type: 'minor' | 'major' }) => void;

/** Bytes of frames a node:crypto worker handles between two young-generation collections. */
export const WORKER_GC_EVERY = 4 * 1024 * 1024;

let gcFn: Collect | null | undefined;

/**
 * V8's collector for this isolate (each worker thread asks for its own), or null when V8 refuses
 * the flag. The flag only makes gc() reachable from a fresh context; nothing else changes.
 */
export function v8Gc(): Collect | null {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('typeof gc === "function" ? gc : null') as Collect | null;
    } catch {
      gcFn = null;
    }
  }
  return gcFn;
}

/** A full collection, then glibc's heap trimmed; what it did, for the log. */
export function collectAndTrim(): { gc: boolean; mallocTrim: boolean | null } {
  const gc = v8Gc();
  gc?.();
  return { gc: gc !== null, mallocTrim: mallocTrim?.() ?? null };
}

/**
 * For a crypto worker: count the frame bytes it handled, and collect its young garbage every
 * WORKER_GC_EVERY bytes. node:crypto's cipher.update() leaves a short-lived buffer behind per call,
 * which V8 collects only once ~64 MiB are outstanding; the native cipher writes in place and leaves
 * nothing, so with it (or without a collector) this is null.
 */
export function frameGarbageCollector(): ((bytes: number) => void) | null {
  const gc = nativeCipher === null ? v8Gc() : null;
  if (gc === null) return null;
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < WORKER_GC_EVERY) return;
    since = 0;
    gc({ type: 'minor' });
  };
}

/** For status: "full GC + malloc_trim after large connections close[, crypto workers: young GC every 4 MiB]". */
export function heapText(): string {
  const gc = v8Gc() !== null;
  const reclaim = [gc ? 'full GC' : 'no GC (V8 refused --expose-gc)', mallocTrim ? 'malloc_trim' : 'no malloc_trim (not glibc, addon not built or DST_NATIVE=0)'].join(' + ');
  const workers = gc && nativeCipher === null ? `, crypto workers: young GC every ${WORKER_GC_EVERY / 1024 / 1024} MiB` : '';
  return `${reclaim} after large connections close${workers}`;
}
