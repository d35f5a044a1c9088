// The engine's payload pool: large payload buffers are reused, not re-allocated per request. The
// one process-wide store of free payload buffers (global by design: every connection draws from
// and gives back to the same free lists); the codecs in src/protocol/ get it as a PayloadSource.
//
// Every new large Buffer costs an mmap, a page fault per 4 KiB page when first written, an
// munmap when collected, and V8 "external memory" that triggers a full mark-compact every
// ~64 MiB allocated: at 1 GB/s that was a third of an engine's CPU (bench/README.md). Buffers
// of POOL_MIN bytes or more that the decoders assemble come from here; whoever is provably the
// last user of one gives it back with releasePayload(). A buffer never released is simply
// collected: release is an optimisation, never an obligation. Only buffers lent by the pool
// and not yet given back are taken back (a WeakSet of their ArrayBuffers), so releasing a
// foreign buffer, or the same one twice, is a no-op.
//
// Pooled buffers are SharedArrayBuffer-backed: the crypto pool's workers seal and open them
// where they are (postMessage shares a SharedArrayBuffer instead of cloning it), so a 1 MiB
// frame crosses to a worker and back without a copy or a fresh allocation on the main thread.
import type { PayloadSource } from '../../protocol/stream-buffer.js';

/**
 * Smallest payload taken from the pool. 4 KiB: block-sized reads and writes are the common
 * case, and at ~60k/s a fresh buffer (or slab) for each drove a full mark-compact every few
 * hundred ms on the export (bench/README.md); recycled, they allocate nothing.
 */
export const POOL_MIN = 4 * 1024;
/** At most this many bytes of free buffers are kept. */
export const POOL_MAX_FREE = 48 * 1024 * 1024;
const poolFree = new Map<number, SharedArrayBuffer[]>();
const poolLent = new WeakSet<ArrayBufferLike>();
let poolFreeBytes = 0;

/** Size class for n ≥ POOL_MIN: 2^k × {1, 1.25, 1.5, 1.75} (≤ 25 % slack, few classes). */
function sizeClass(n: number): number {
  const p = 2 ** Math.floor(Math.log2(n));
  const step = p / 4;
  return Math.ceil(n / step) * step;
}

declare const lent: unique symbol;
/**
 * A buffer from allocPayload(): its holder is its one owner, who fills it, hands it on whole (the
 * next holder owns it) or gives it back with releasePayload() and then touches it no more.
 */
export type Payload = Buffer & { readonly [lent]: true };

/** An uninitialised buffer of n bytes; pooled when n ≥ POOL_MIN. The caller fills all of it. */
export function allocPayload(n: number): Payload {
  if (n < POOL_MIN) return Buffer.allocUnsafe(n) as Payload;
  const size = sizeClass(n);
  const list = poolFree.get(size);
  let ab = list !== undefined ? list.pop() : undefined;
  if (ab !== undefined) poolFreeBytes -= size;
  else ab = new SharedArrayBuffer(size);
  poolLent.add(ab);
  return Buffer.from(ab, 0, n) as Payload;
}

/**
 * Give a payload from allocPayload() back once nothing will read or write it again (its bytes
 * are in the kernel, on disk, or copied): the one way back into the pool. Takes any buffer the
 * caller owns, since a frame's payload may be pooled or a view of a read: a no-op for one the
 * pool did not lend (or lent and has back). A list gives back each of its buffers.
 */
export function releasePayload(buf: Buffer | readonly Buffer[] | null): void {
  if (buf === null) return;
  if (!Buffer.isBuffer(buf)) { // a multi-leg read's pieces, each from its own leg
    for (const b of buf) releasePayload(b);
    return;
  }
  const ab = buf.buffer;
  if (!(ab instanceof SharedArrayBuffer) || !poolLent.has(ab)) return;
  poolLent.delete(ab);
  const size = ab.byteLength;
  if (poolFreeBytes + size > POOL_MAX_FREE) return; // the pool is full
  let list = poolFree.get(size);
  if (list === undefined) {
    list = [];
    poolFree.set(size, list);
  }
  list.push(ab);
  poolFreeBytes += size;
}

// Decoder-owned copies (remainders of transient chunks) are cut from shared slabs: one
// ArrayBuffer per SMALL_SLAB bytes instead of one per copy. A slab is collected once every view
// cut from it is gone. Never from the payload pool: frames are taken from a copy as views, and a
// pooled buffer must have exactly one owner (releasing one view would recycle the others).
const SMALL_SLAB = 256 * 1024;
let smallSlab: Buffer | null = null;
let smallUsed = 0;

function smallAlloc(n: number): Buffer {
  if (n > SMALL_SLAB / 4) return Buffer.allocUnsafeSlow(n);
  if (smallSlab === null || smallUsed + n > SMALL_SLAB) {
    smallSlab = Buffer.allocUnsafeSlow(SMALL_SLAB);
    smallUsed = 0;
  }
  const out = smallSlab.subarray(smallUsed, smallUsed + n);
  smallUsed += (n + 7) & ~7;
  return out;
}

/** A decoder-owned copy of src[start..end) (small ones share a slab). */
function ownedCopy(src: Buffer, start: number, end: number): Buffer {
  const out = smallAlloc(end - start);
  src.copy(out, 0, start, end);
  return out;
}

/**
 * Forget free buffers larger than `keepMax` bytes (they are collected like any garbage); returns
 * the bytes dropped. A burst of large requests would otherwise pin up to POOL_MAX_FREE for good.
 */
export function dropPooledPayloads(keepMax: number): number {
  let dropped = 0;
  for (const [size, list] of poolFree) {
    if (size <= keepMax) continue;
    dropped += size * list.length;
    poolFree.delete(size);
  }
  poolFreeBytes -= dropped;
  return dropped;
}

/** Bytes of free buffers held by the pool (tests, the metrics endpoint). */
export function pooledBytes(): number {
  return poolFreeBytes;
}

/** The pool as the decoders' PayloadSource (FrameDecoder, NbdServerDecoder). */
export const payloadPool: PayloadSource = { min: POOL_MIN, alloc: allocPayload, copy: ownedCopy };
