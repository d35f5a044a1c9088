// One NBD request in progress: its splitting into pieces of at most the target's maxRequest and
// the reassembly of their results into one answer. Pure bookkeeping, no I/O: the transmission
// loop submits the pieces and sends the answer. A FLUSH and a BLOCK_STATUS are one piece each
// (they move no data; a block status answers a prefix of its range anyway).
import { dataLength, type BlockData, type BlockOp, type BlockRequest } from './target.js';
import type { RequestMessage } from '../../protocol/nbd-decoder.js';
import { CmdFlag } from '../../protocol/nbd.js';
import { ZeroFlag, checkExtents } from '../../protocol/thin.js';

/**
 * One NBD request being executed: possibly several submits, answered once. While pieces are
 * unissued it is also the connection's job (at most one: the unsubmitted remainder of a split
 * request, or a request waiting for target capacity). One object per request, nothing else.
 */
export class RequestInProgress {
  /** read result of a single-piece read */
  data: BlockData | null = null;
  /** read results per piece, in order, when the read is split; null otherwise */
  readonly pieces: (BlockData | null)[] | null;
  /** submits issued and not completed */
  outstanding = 0;
  /** pieces not yet submitted */
  unissued: number;
  /** first failing errno (symbolic) */
  errno: string | null = null;
  private answered = false;
  private next: number;       // next offset to submit
  private readonly end: number;   // offset + length
  /** index of the next piece */
  piece = 0;
  private readonly fua: boolean;
  /** arrival time (the target's recorder clock), for the request's latency */
  startMs = 0;
  /** ZeroFlag bits of a WRITE_ZEROES (0 for the other ops) */
  private readonly zeroFlags: number;

  constructor(readonly req: RequestMessage, readonly op: BlockOp, private readonly pieceSize: number) {
    const whole = op === 'flush' || op === 'block-status';
    const pieces = whole ? 1 : Math.ceil(req.length / pieceSize);
    this.pieces = op === 'read' && pieces > 1 ? new Array<BlockData | null>(pieces).fill(null) : null;
    this.unissued = pieces;
    this.next = op === 'flush' ? 0 : req.offset;
    this.end = op === 'flush' ? 0 : req.offset + req.length;
    this.fua = op !== 'read' && op !== 'flush' && (req.flags & CmdFlag.FUA) !== 0;
    this.zeroFlags = op !== 'write-zeroes' ? 0
      : ((req.flags & CmdFlag.NO_HOLE) !== 0 ? ZeroFlag.NO_HOLE : 0) | ((req.flags & CmdFlag.FAST_ZERO) !== 0 ? ZeroFlag.FAST_ZERO : 0);
  }

  /** The next piece, counted as issued (a WRITE's payload is a view into the request's). */
  takePiece(): BlockRequest {
    const offset = this.next;
    const length = this.op === 'flush' ? 0 : this.op === 'block-status' ? this.req.length : Math.min(this.pieceSize, this.end - offset);
    const whole = this.op === 'write' ? this.req.payload! : null;
    const payload = whole === null ? null
      : length === whole.length ? whole : whole.subarray(offset - this.req.offset, offset - this.req.offset + length);
    this.next += length;
    this.piece++;
    this.unissued--;
    this.outstanding++;
    return { op: this.op, offset, length, payload, fua: this.fua, zeroFlags: this.zeroFlags };
  }

  /** A piece the target refused to take: no completion will come for it. */
  untake(): void {
    this.outstanding--;
  }

  /** Give up on the unsubmitted pieces. */
  abandon(errno: string): void {
    this.unissued = 0;
    if (this.errno === null) this.errno = errno;
  }

  /**
   * Piece `index` (of `length` bytes) completed. false when a read came back short or a block
   * status is not one checked answer for its range (then EIO: the client must never see it).
   */
  pieceDone(index: number, length: number, errno: string | null, data: BlockData | null): boolean {
    this.outstanding--;
    if (errno !== null) {
      if (this.errno === null) this.errno = errno;
    } else if (this.op === 'read') {
      if (data === null || dataLength(data) !== length) {
        if (this.errno === null) this.errno = 'EIO';
        return false;
      }
      if (this.pieces !== null) this.pieces[index] = data;
      else this.data = data;
    } else if (this.op === 'block-status') {
      if (!isStatusAnswer(data, length)) {
        if (this.errno === null) this.errno = 'EIO';
        return false;
      }
      this.data = data;
    }
    return true;
  }

  /** true exactly once: when every piece is issued and done (then the request is answered). */
  settle(): boolean {
    if (this.answered || this.outstanding > 0 || this.unissued > 0) return false;
    this.answered = true;
    return true;
  }

  /** A successful read's data: one buffer, or the pieces in order. */
  result(): Buffer | Buffer[] | null {
    if (this.pieces !== null) return (this.pieces as BlockData[]).flat();
    return this.data;
  }
}

function isStatusAnswer(data: BlockData | null, length: number): data is Buffer {
  if (data === null || !Buffer.isBuffer(data)) return false;
  try {
    checkExtents(data, length);
    return true;
  } catch {
    return false;
  }
}
