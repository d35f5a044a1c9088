// The NBD transmission loop for one client: each request is refused at the edge (nbd-validate.ts)
// or started as a RequestInProgress, its pieces are submitted to the target while it has
// capacity, and the one answer goes back as a simple or structured reply. The connection owns the
// socket, reading and blocking; this owns the requests accepted and not yet answered.
import { dataLength, type BlockTarget } from './target.js';
import type { Logger } from '../../util/log.js';
import { errnoOf } from '../../util/errors.js';
import type { RequestMessage } from '../../protocol/nbd-decoder.js';
import { Cmd, CmdFlag, MAX_PAYLOAD, NbdErr, cmdName, nbdErrName, toNbdError } from '../../protocol/nbd.js';
import { encodeBlockStatusChunk, encodeErrorChunk, encodeOffsetDataChunk, encodeSimpleReply } from '../../protocol/nbd-replies.js';
import { MAX_EXTENTS, clipExtents } from '../../protocol/thin.js';
import { releasePayload } from '../io/payload-pool.js';
import { blockOpOf, validateRequest, type Agreed } from './nbd-validate.js';
import { RequestInProgress } from './nbd-request.js';

/** What the transmission loop needs from its connection. */
export interface TransmissionLink {
  /** Queue reply bytes; `written` runs once the socket is done with them. */
  send(bufs: Buffer | Buffer[], written?: () => void): void;
  /** Draining, or past transmission: nothing new is submitted (buffered requests get ESHUTDOWN). */
  readonly stopping: boolean;
  /** The socket is gone: answers are dropped. */
  readonly closed: boolean;
  /** NBD_CMD_DISC arrived. */
  disconnect(): void;
  /** A request was answered (room for more requests, or the last one before ending). */
  answered(): void;
}

export class NbdTransmission {
  /** what negotiation agreed (set when transmission begins) */
  agreed: Agreed = { structured: false, fastZero: false, allocationContext: null };
  /** requests accepted and not yet answered */
  inflight = 0;
  /** READ/WRITE bytes of accepted requests not yet answered */
  inflightBytes = 0;
  /** the request with pieces still to submit (waiting for target capacity), if any */
  job: RequestInProgress | null = null;

  constructor(
    private readonly target: BlockTarget,
    private readonly log: Logger,
    private readonly link: TransmissionLink,
  ) {}

  handleRequest(req: RequestMessage): void {
    if (req.type === Cmd.DISC) {
      this.log.debug('NBD disconnect requested', { inflight: this.inflight });
      this.link.disconnect();
      return;
    }
    if (this.link.stopping) return this.reject(req, 'ESHUTDOWN', 'the NBD endpoint is shutting down');
    const refusal = validateRequest(req, this.target, this.agreed);
    if (refusal !== null) return this.reject(req, refusal.errno, refusal.reason);
    const op = blockOpOf(req.type)!;
    if (op !== 'flush' && req.length === 0) { this.sendReply(req, null, null); return; } // empty trim/zero range

    const zeroes = op === 'trim' || op === 'write-zeroes';
    const maxReq = Math.max(1, Math.floor(zeroes ? this.target.maxZeroRequest() : Math.min(this.target.maxRequest(), MAX_PAYLOAD)));
    this.inflight++;
    if (op === 'read' || op === 'write') this.inflightBytes += req.length;
    this.job = new RequestInProgress(req, op, maxReq);
    this.job.startMs = this.target.recorder?.now() ?? 0;
    // continueJob runs from the connection's pump; when there is no capacity it blocks on it.
  }

  /** Submit pieces while the target has capacity. true when the job is fully issued. */
  continueJob(): boolean {
    const job = this.job!;
    while (job.unissued > 0) {
      if (this.link.stopping) {
        job.abandon('ESHUTDOWN');
        break;
      }
      if (!this.target.hasCapacity()) return false;
      const index = job.piece;
      const breq = job.takePiece();
      const { offset, length } = breq;
      let called = false;
      try {
        this.target.submit(breq, (errno, data) => {
          if (called) {
            this.log.warn('BlockTarget completed a request twice; ignored', { cmd: cmdName(job.req.type), offset, length });
            return;
          }
          called = true;
          if (!job.pieceDone(index, length, errno, data)) {
            this.log.error('BlockTarget returned a short read or a bad block status',
              { cmd: cmdName(job.req.type), expected: length, got: data === null ? null : dataLength(data) });
          }
          this.maybeAnswer(job);
        });
      } catch (err) {
        called = true;
        job.untake();
        this.log.error('BlockTarget refused a request', { cmd: cmdName(job.req.type), offset, length, error: (err as Error).message });
        job.abandon(errnoOf(err) ?? 'EIO');
        break;
      }
    }
    this.job = null;
    this.maybeAnswer(job);
    return true;
  }

  private maybeAnswer(job: RequestInProgress): void {
    if (!job.settle()) return;
    const req = job.req;
    this.target.recorder?.done(job.op, job.startMs, job.errno, req.length);
    this.inflight--;
    if (job.op === 'read' || job.op === 'write') this.inflightBytes -= req.length;
    if (this.link.closed) {
      this.log.debug('NBD reply dropped: connection closed', { cmd: cmdName(req.type), errno: job.errno });
      return;
    }
    if (job.errno !== null) {
      const nbdErr = toNbdError(job.errno);
      this.log.debug('NBD request failed', {
        cmd: cmdName(req.type), offset: req.offset, length: req.length, errno: job.errno, nbdError: nbdErrName(nbdErr),
      });
      this.sendReply(req, job.errno, `${cmdName(req.type)} failed: ${job.errno}`);
    } else {
      this.sendReply(req, null, null, job.result());
      // A WRITE that succeeded: the export has all its bytes, so nothing reads its payload
      // again (the transaction is complete, never replayed). Failed ones are never released:
      // a frame stuck in a dead socket's queue could still be written from it.
      if (job.op === 'write') releasePayload(req.payload);
    }
    this.link.answered();
  }

  /** Refuse a request at the edge; the connection is kept. */
  private reject(req: RequestMessage, errno: string, message: string): void {
    this.log.debug('NBD request refused', { cmd: cmdName(req.type), offset: req.offset, length: req.length, errno });
    const op = blockOpOf(req.type);
    const rec = this.target.recorder;
    if (op !== undefined && rec) rec.done(op, rec.now(), errno, req.length);
    this.sendReply(req, errno, message);
  }

  private sendReply(req: RequestMessage, errno: string | null, message: string | null, data: Buffer | Buffer[] | null = null): void {
    // READ and BLOCK_STATUS answer in chunks once structured replies are on (BLOCK_STATUS only can)
    const chunked = this.agreed.structured && (req.type === Cmd.READ || req.type === Cmd.BLOCK_STATUS);
    if (errno !== null) {
      const err = toNbdError(errno);
      if (chunked) this.link.send(encodeErrorChunk(req.cookie, err, message ?? '', true));
      else this.link.send(encodeSimpleReply(req.cookie, err));
      return;
    }
    if (data === null) {
      this.link.send(encodeSimpleReply(req.cookie, NbdErr.OK));
      return;
    }
    let parts: Buffer[];
    if (req.type === Cmd.BLOCK_STATUS) {
      // the target answers within the range; REQ_ONE asks for its first extent only
      const count = (req.flags & CmdFlag.REQ_ONE) !== 0 ? 1 : MAX_EXTENTS;
      parts = encodeBlockStatusChunk(req.cookie, this.agreed.allocationContext!, clipExtents(data as Buffer, req.length, count));
    } else {
      parts = this.agreed.structured ? encodeOffsetDataChunk(req.cookie, req.offset, data, true)
        : [encodeSimpleReply(req.cookie, NbdErr.OK), ...(Buffer.isBuffer(data) ? [data] : data)];
    }
    // The target's data goes back to the payload pool once the socket is done with it.
    this.link.send(parts, () => releasePayload(data));
  }
}
