// The IO requests of one serving export connection (DESIGN §8): the in-flight window (the
// per-connection cap and MAX_BYTES_IN_FLIGHT; frames that do not fit wait, in order), then
// validate → dedup → backend → IO_RESPONSE, and the count of calls a fencing successor waits for.
// The connection owns the socket, the phases and the sending; this owns what is in flight.
import type { Logger } from '../../util/log.js';
import { errnoNumber, errnoOf } from '../../util/errors.js';
import { Flag, Op, opName, zeroFlagsFromWire, type Frame } from '../../protocol/wire.js';
import type { Backend, Extent } from './backend.js';
import { encodeExtents } from '../../protocol/thin.js';
import type { Session } from './dedup.js';
import type { SessionLayer, SessionMember } from './session.js';
import type { CallToken, ExportStats } from './stats.js';
import type { HelloNode } from './handshake.js';
import { entryAccess } from './acl.js';
import { validateIo } from './validate.js';
import { DIGEST_PIECE, digestRange } from './digest.js';
import type { HeldClaim } from './mirror-claims.js';

/**
 * Bytes in flight a connection may have (READ data being read and its reply being sealed or in the
 * socket's buffer, WRITE payloads being written) before it stops dispatching and reading: a client
 * that never reads its replies, or floods large writes, costs at most about this much (a single
 * larger request still goes alone). See the worst-case memory formula in dst(8) LIMITS.
 */
export const MAX_BYTES_IN_FLIGHT = 32 * 1024 * 1024;

/** What requests read from their export node. */
export interface RequestNode<C extends SessionMember> extends HelloNode {
  readonly sessions: SessionLayer<C>;
  readonly stats: ExportStats;
  backend(): Backend;
  /** a backend call failed with this error (the node checks for a vanished disk) */
  backendFailed(err: unknown): void;
}

/** What requests need of their connection. */
export interface RequestSink {
  readonly log: Logger;
  /** peer address, IPv4-mapped normalised */
  readonly peer: string;
  /** reply bytes not yet handed to the kernel (socket buffer, sealing) */
  outBytes(): number;
  respond(frame: Frame, status: number, data: Buffer | null): void;
  /** a protocol violation: close at once */
  abort(reason: string): void;
  /** a backend call was answered; idle: it was the last in flight (the drain waiters have run) */
  callDone(idle: boolean): void;
}

export class Requests<C extends SessionMember> {
  /** the session joined at admission (null: none yet) */
  session: Session<C> | null = null;
  /** access granted at the handshake (Access bits) */
  granted = 0;
  /** the mirror claim taken at the handshake (null: a client without one, never fenced by claims) */
  claim: HeldClaim | null = null;
  /** backend calls issued and not finished */
  inflight = 0;
  /** requestBytes() of the calls issued to the backend and not answered yet */
  private callBytes = 0;
  private waiting: Frame[] = [];
  private drainWaiters: (() => void)[] = [];

  constructor(private readonly host: RequestNode<C>, private readonly conn: RequestSink) {}

  /** Frames waiting for room in the window. */
  get hasWaiting(): boolean {
    return this.waiting.length > 0;
  }

  /** Resolves once no backend call is in flight. */
  drained(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** An IO frame: run now if the window has room and nothing waits before it, else queue it. */
  offer(frame: Frame): void {
    if (this.waiting.length === 0 && this.canDispatch(frame)) this.dispatch(frame);
    else this.waiting.push(frame);
  }

  /** Run the waiting frames the window has room for, in order. */
  dispatchWaiting(): void {
    while (this.waiting.length > 0 && this.canDispatch(this.waiting[0]!)) this.dispatch(this.waiting.shift()!);
  }

  /** Forget the frames not started (closing); returns how many. */
  dropWaiting(): number {
    const n = this.waiting.length;
    if (n > 0) this.waiting = [];
    return n;
  }

  /** Bytes in flight: backend calls' data, and replies not yet handed to the kernel. */
  committedBytes(): number {
    return this.callBytes + this.conn.outBytes();
  }

  /** May `frame` be dispatched now (or, without a frame, is there room for one more at all)? */
  canDispatch(frame?: Frame): boolean {
    if (this.inflight >= this.host.limits.maxInflightPerConnection) return false;
    const committed = this.committedBytes();
    if (committed === 0) return true; // alone, whatever its size
    return committed < MAX_BYTES_IN_FLIGHT && committed + (frame ? requestBytes(frame) : 0) <= MAX_BYTES_IN_FLIGHT;
  }

  private dispatch(frame: Frame): void {
    const host = this.host;
    const conn = this.conn;
    const op = frame.op as Op;
    const access = this.granted & entryAccess(host.aclEntry(conn.peer), host.config().readonly);
    const overtaken = this.claim !== null && host.claims().overtaken(this.claim);
    const verdict = validateIo(frame, { size: host.size(), maxRequest: host.limits.maxRequestCap, access, overtaken });
    if (!verdict.ok) {
      if (verdict.close) {
        conn.abort(verdict.reason);
        return;
      }
      conn.log.info('request refused', {
        op: opName(op), id: frame.id, offset: frame.offset, length: frame.length, errno: verdict.errno, reason: verdict.reason,
      });
      const status = errnoNumber(verdict.errno);
      host.stats.answered(op, status);
      conn.respond(frame, status, null);
      return;
    }
    const replay = (frame.flags & Flag.REPLAY) !== 0;
    if (replay) host.stats.replayed();
    const recorded = host.sessions.recorded(this.session, frame, replay);
    if (recorded !== undefined) {
      conn.log.debug('replay answered from record', { op: opName(op), id: frame.id, status: recorded });
      host.stats.answered(op, recorded);
      conn.respond(frame, recorded, null);
      return;
    }
    this.inflight++;
    this.callBytes += requestBytes(frame);
    const token = host.stats.beginCall();
    this.run(frame).then(
      (data) => this.finish(frame, token, 0, data),
      (err) => {
        const errno = errnoOf(err) ?? 'EIO';
        // the real errno, before anything maps it
        conn.log.warn(`${opName(op)} failed`, {
          op: opName(op), id: frame.id, offset: frame.offset, length: frame.length, errno, error: (err as Error)?.message,
        });
        this.finish(frame, token, errnoNumber(errno), null);
        host.backendFailed(err); // after answering: a vanished disk fails the node and its connections
      },
    );
  }

  private async run(frame: Frame): Promise<Buffer | null> {
    const b = this.host.backend();
    const fua = (frame.flags & Flag.FUA) !== 0;
    switch (frame.op as Op) {
      case Op.READ: return b.read(frame.offset, frame.length);
      case Op.WRITE: return b.write(frame.offset, frame.payload, fua).then(() => null);
      case Op.FLUSH: return b.flush().then(() => null);
      case Op.TRIM: return b.trim(frame.offset, frame.length, fua).then(() => null);
      case Op.WRITE_ZEROES: return b.writeZeroes(frame.offset, frame.length, fua, zeroFlagsFromWire(frame.flags)).then(() => null);
      case Op.BLOCK_STATUS: return b.extents(frame.offset, frame.length).then(encodeBackendExtents);
      case Op.DIGEST: return digestRange(b, frame.offset, frame.length);
      default: return Promise.reject(Object.assign(new Error('EINVAL: unknown op'), { code: 'EINVAL' }));
    }
  }

  private finish(frame: Frame, token: CallToken, status: number, data: Buffer | null): void {
    const op = frame.op as Op;
    const bytes = status === 0 && (op === Op.READ || op === Op.WRITE) ? frame.length : 0;
    this.host.stats.endCall(token, op, bytes, status);
    this.host.sessions.record(this.session, frame, status); // before the drain waiters run
    this.inflight--;
    this.callBytes -= requestBytes(frame);
    this.conn.respond(frame, status, status === 0 ? data : null);
    const idle = this.inflight === 0;
    if (idle) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
    this.conn.callDone(idle);
  }
}

/** The backend's extents (a prefix of the range) as the wire's descriptors, flags as they are. */
function encodeBackendExtents(list: readonly Extent[]): Buffer {
  return encodeExtents(list.map((e) => ({ length: e.length, flags: e.flags })));
}

/**
 * Data bytes a request holds while it runs: a READ's reply, a DIGEST's one piece at a time, a
 * WRITE's payload (others: a header).
 */
function requestBytes(frame: Frame): number {
  switch (frame.op as Op) {
    case Op.READ: return frame.length;
    case Op.DIGEST: return Math.min(frame.length, DIGEST_PIECE);
    default: return frame.payload.length;
  }
}
