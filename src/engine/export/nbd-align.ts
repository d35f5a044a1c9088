// Requests smaller than the NBD server's minimum block size (issue 17): a server may require every
// request to be aligned to its INFO_BLOCK_SIZE minimum (nbdkit's blocksize-policy, some rbd setups)
// while dst's clients are promised byte granularity. A read that is not aligned reads the blocks
// around it; a write (or zeroing) that is not aligned becomes read-modify-write of its edge blocks.
// So that a read-modify-write never writes back stale bytes over a concurrent write, every write
// to such a server holds a range lock on the blocks it covers, in arrival order.
import { RangeLock } from '../layout/range-lock.js';
import { allocPayload, releasePayload } from '../io/payload-pool.js';

/** The aligned requests the backend sends. */
export interface AlignedIo {
  /** read [offset, +into.length) into `into` */
  read(offset: number, into: Buffer): Promise<void>;
  /** write `data` at offset */
  write(offset: number, data: Buffer): Promise<void>;
}

export class BlockAligner {
  private readonly lock = new RangeLock();

  constructor(readonly min: number) {}

  private down(x: number): number { return x - (x % this.min); }
  private up(x: number): number { return x % this.min === 0 ? x : this.down(x) + this.min; }

  aligned(offset: number, length: number): boolean {
    return offset % this.min === 0 && length % this.min === 0;
  }

  /** Read [offset, +into.length) through the aligned range around it. */
  async read(offset: number, into: Buffer, io: AlignedIo): Promise<void> {
    if (this.aligned(offset, into.length)) return io.read(offset, into);
    const start = this.down(offset);
    const around = allocPayload(this.up(offset + into.length) - start);
    try {
      await io.read(start, around);
      around.copy(into, 0, offset - start, offset - start + into.length);
    } finally {
      releasePayload(around);
    }
  }

  /** Run `fn` holding the blocks that [offset, +length) touches. */
  async locked<T>(offset: number, length: number, fn: () => Promise<T>): Promise<T> {
    const held = await this.lock.lock(this.down(offset), this.up(offset + length));
    try {
      return await fn();
    } finally {
      this.lock.release(held);
    }
  }

  /** Write `data` at offset, its unaligned edges merged into the blocks read around them; the caller holds the lock. */
  async merge(offset: number, data: Buffer, io: AlignedIo): Promise<void> {
    if (this.aligned(offset, data.length)) return io.write(offset, data);
    const start = this.down(offset), end = this.up(offset + data.length);
    const whole = allocPayload(end - start);
    try {
      const headBlock = start, tailBlock = end - this.min;
      if (offset !== start) await io.read(headBlock, whole.subarray(0, this.min));
      if (offset + data.length !== end && (tailBlock !== headBlock || offset === start)) {
        await io.read(tailBlock, whole.subarray(tailBlock - start));
      }
      data.copy(whole, offset - start);
      await io.write(start, whole);
    } finally {
      releasePayload(whole);
    }
  }

  /**
   * Zero [offset, +length): the unaligned edges merged as data, the aligned middle through `middle`
   * (the server's own zeroing); the caller holds the lock.
   */
  async zero(offset: number, length: number, zeros: (n: number) => Buffer, io: AlignedIo,
    middle: (offset: number, length: number) => Promise<void>): Promise<void> {
    const end = offset + length;
    const midStart = Math.min(this.up(offset), end), midEnd = Math.max(this.down(end), midStart);
    if (midStart > offset) await this.merge(offset, zeros(midStart - offset), io);
    if (midEnd > midStart) await middle(midStart, midEnd - midStart);
    if (end > midEnd) await this.merge(midEnd, zeros(end - midEnd), io);
  }
}
