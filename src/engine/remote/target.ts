// The seam between the local NBD endpoint and whatever executes requests (the remote node's
// transaction table in the product; an in-memory disk in endpoint tests).
import type { RequestRecorder } from '../metrics/request-metrics.js';

/**
 * 'block-status' asks which parts of [offset, offset + length) are holes or read zeroes; it completes
 * with encoded extents (protocol/thin.ts) covering a prefix of the range, from `offset` on.
 */
export type BlockOp = 'read' | 'write' | 'flush' | 'trim' | 'write-zeroes' | 'block-status';

export interface BlockRequest {
  op: BlockOp;
  offset: number;
  length: number;
  /** exactly `length` bytes for 'write'; null otherwise */
  payload: Buffer | null;
  fua: boolean;
  /** ZeroFlag bits (protocol/thin.ts) of a 'write-zeroes' (absent: 0) */
  zeroFlags?: number;
}

/**
 * What a leg's transaction table runs: every BlockOp, plus what only a layout asks of one export
 * (never the NBD side): 'digest', the SHA-256 of a range (issue 15, mirror healing).
 */
export type LegOp = BlockOp | 'digest';

/** A request to one leg (a BlockRequest is one). A 'digest' completes with its 32 bytes as data. */
export interface LegRequest extends Omit<BlockRequest, 'op'> {
  op: LegOp;
}

/**
 * errno: null = success, else a symbolic errno name ('EIO', 'EPERM', 'ESHUTDOWN', ...). data: the
 * read result, one buffer or several in order (a multi-leg device answers a read that spans legs
 * with each leg's buffer, so nothing is copied).
 */
export type BlockDone = (errno: string | null, data: BlockData | null) => void;
export type BlockData = Buffer | Buffer[];
/** What one transaction answers: a read is one buffer. A TxnDone is a BlockDone (it takes less). */
export type TxnDone = (errno: string | null, data: Buffer | null) => void;

/** Bytes in a read result. */
export function dataLength(d: BlockData): number {
  if (Buffer.isBuffer(d)) return d.length;
  let n = 0;
  for (const b of d) n += b.length;
  return n;
}

/**
 * The largest TRIM or WRITE_ZEROES sent to one export: one fallocate frees or zeroes 64 MiB in
 * about the time of a few small writes, where cutting at max-request (1 MiB by default) would make
 * a 256 MiB zeroing 256 calls; a block device's BLKZEROOUT may write the zeroes itself, so the
 * piece stays small enough to finish well within the resend timeout.
 */
export const MAX_ZERO_REQUEST = 64 * 1024 * 1024;

export interface BlockTarget {
  /** the node's name: NBD export names "" and this are accepted */
  readonly name: string;
  /** export size in bytes (known once the first HELLO succeeded) */
  size(): number;
  /** access granted by the export */
  permissions(): 'r' | 'w' | 'rw';
  /** largest request submit() accepts; bigger NBD requests are split by the endpoint */
  maxRequest(): number;
  /** largest TRIM or WRITE_ZEROES submit() accepts (they move no data: often more than maxRequest) */
  maxZeroRequest(): number;
  /** WRITE_ZEROES with ZeroFlag.FAST_ZERO is honoured (fails at once with ENOTSUP rather than write zeroes) */
  fastZero(): boolean;
  /** false when the transaction pool is full: stop reading NBD sockets until onCapacity fires */
  hasCapacity(): boolean;
  /** listener runs when capacity returns; returns an unsubscribe function */
  onCapacity(listener: () => void): () => void;
  /**
   * Execute one request (in range; length ≤ maxRequest() unless a 'block-status', which moves no data). done runs exactly once. Throws if !hasCapacity().
   * Buffers are recycled through the payload pool (engine/io/payload-pool.ts), so ownership is strict: the target
   * must not touch req.payload after a successful done() (the endpoint gives it back to the pool),
   * and the endpoint owns `data` from done() on (it gives it back once the socket wrote it).
   */
  submit(req: BlockRequest, done: BlockDone): void;
  /** where the NBD side reports each request's arrival and answer (latency, errors); none: not measured */
  readonly recorder?: RequestRecorder;
}
