// Giving memory back after a burst of large requests (a client that asked for 32 MiB of READs
// and went away). Three steps, each needed for RSS to come down within seconds:
//   1. the payload pool forgets its free buffers above POOL_KEEP_MAX (else it keeps them for good);
//   2. a full garbage collection (heap.ts) frees them now: an idle engine allocates too little for V8 to
//      collect on its own before its memory reducer runs (≈ 8 s later);
//   3. malloc_trim (native/cipher.c, via heap.ts) returns the freed pages to the kernel: glibc serves large
//      blocks from its heap once its mmap threshold has grown, and keeps what is freed there.
// It runs once per RECLAIM_DELAY_MS at most, only when a connection closed and the pool had
// something large to drop, so steady traffic never pays for a collection.
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { dropPooledPayloads } from './io/payload-pool.js';
import { collectAndTrim } from './heap.js';

/** Free pooled buffers up to this size are kept (the default max-request is 1 MiB). */
export const POOL_KEEP_MAX = 1024 * 1024;
/** Delay after a connection closes before reclaiming (several closes share one pass). */
export const RECLAIM_DELAY_MS = 500;

export class MemoryReclaimer {
  private timer: TimerHandle | null = null;

  constructor(private readonly clock: Clock, private readonly log: Logger) {}

  /** A connection closed: reclaim soon (once for several closes). */
  schedule(): void {
    this.timer ??= this.clock.setTimer(RECLAIM_DELAY_MS, () => {
      this.timer = null;
      this.reclaim();
    });
  }

  private reclaim(): void {
    const dropped = dropPooledPayloads(POOL_KEEP_MAX);
    if (dropped === 0) return;
    const done = collectAndTrim();
    this.log.debug('memory reclaimed', { op: 'reclaim', pooledBytes: dropped, gc: done.gc, mallocTrim: done.mallocTrim });
  }
}
