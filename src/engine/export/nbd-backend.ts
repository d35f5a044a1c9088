// The NBD backend (issue 17): an export whose disk is an NBD server (qemu-nbd, rbd-nbd, nbdkit,
// another dst). Each backend call becomes NBD requests on one link (nbd-link.ts): at most
// MAX_INFLIGHT on the wire, the rest in a bounded FIFO; replies are matched by cookie.
//
// What the server advertises is forwarded; what it lacks is done the way a file backend without
// native ops does it: TRIM dropped, zeroes written as data in ZERO_CHUNK pieces (FAST_ZERO → ENOTSUP),
// extents all data, FLUSH a no-op without SEND_FLUSH, FUA without SEND_FUA a write then a flush.
// A server error reply rejects the call with the NBD errno as err.code (EIO when NBD has none better).
// A server whose INFO_BLOCK_SIZE minimum is above 1 gets only aligned reads, writes and zeroes:
// nbd-align.ts reads around and read-modify-writes the edges of what is not aligned.
//
// When the link drops, the requests on it go back to the head of the queue and the backend
// reconnects with the remotes' backoff (reconnect-delay doubling to 30 s), re-negotiates, checks the
// size, and re-issues them: reads, writes at the same offset, flushes and zeroes are idempotent.
// The export's clients see a pause. A request still waiting after the policy's deadline fails with
// EIO; a server that comes back with another size fails what waits, and everything sent until the
// size is right again, with EIO (its attempts keep backing off). A server that stops answering
// while its connection stays up is noticed by the oldest request on the wire: older than the
// export's resend-timeout, the link is dropped, and the reconnect re-issues it.
import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import { DstError, errnoOf } from '../../util/errors.js';
import { Cmd, CmdFlag, TxFlag } from '../../protocol/nbd.js';
import { decodeChunk, nbdErrno, type ReplyPiece } from '../../protocol/nbd-client-codec.js';
import { parseNbdUri, type NbdUri } from '../../protocol/nbd-uri.js';
import { ExtentFlag, MAX_EXTENTS, ZeroFlag } from '../../protocol/thin.js';
import { allocPayload, releasePayload } from '../io/payload-pool.js';
import { backoffDelay } from '../remote/leg.js';
import type { Policy } from '../policy.js';
import { deadlineMs, type BackendShow } from '../types.js';
import { ZERO_CHUNK, sysError, zeros, type Backend, type DiskInfo, type Extent } from './backend.js';
import { NbdLink, txFlagsText } from './nbd-link.js';
import { BlockAligner, type AlignedIo } from './nbd-align.js';

/** Requests on the wire at once. */
export const MAX_INFLIGHT = 64;
/** Requests waiting for a slot (or for the server to come back); beyond, calls fail with EAGAIN. */
export const MAX_QUEUED = 4096;
/** Connect and negotiate within this. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Largest TRIM/WRITE_ZEROES/BLOCK_STATUS length in one request (NBD lengths are u32). */
const MAX_RANGE = 2 ** 31;


export interface NbdBackendOptions {
  clock: Clock;
  log: Logger;
  /** the export's policy now (reconnect-delay, the deadline) */
  policy: () => Policy;
  /** the link was lost (up: false) or is back (up: true) */
  onLink?: (up: boolean, detail: string) => void;
}

interface Req {
  cmd: number;
  flags: number;
  offset: number;
  length: number;
  data: Buffer | null;
  /** READ: filled by the replies */
  buf: Buffer | null;
  extents: Extent[] | null;
  error: NodeJS.ErrnoException | null;
  queuedAt: number;
  /** when it last went on the wire */
  sentAt: number;
  cookie: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class NbdBackend implements Backend {
  private link: NbdLink | null;
  private _state: BackendShow['state'] = 'connected';
  private _reconnects = 0;
  private failures = 0;
  private sizeWrong = false;
  private retry: TimerHandle | null = null;
  /** armed while requests are on the wire: fires when the oldest may be overdue */
  private watchdog: TimerHandle | null = null;
  /** requests sent again on a new link after the old one dropped */
  private _reissued = 0;
  private readonly inflight = new Map<number, Req>();
  private queue: Req[] = [];
  private nextCookie = 1;
  private closing: Promise<void> | null = null;
  private idle: (() => void) | null = null;
  private flags = 0;
  /** the server's minimum block size is above 1 (INFO_BLOCK_SIZE, at open): requests are aligned to it */
  private aligner: BlockAligner | null = null;
  /** the size the server had at open: every reconnect must find the same */
  readonly info: DiskInfo = { size: 0, blockDevice: false };

  private constructor(readonly uri: NbdUri, private readonly o: NbdBackendOptions) {
    this.link = null;
  }

  /** Connect and negotiate; rejects with a DstError naming the URI when it cannot. */
  static async open(uri: string, o: NbdBackendOptions): Promise<NbdBackend> {
    const parsed = parseNbdUri(uri);
    const backend = new NbdBackend(parsed, o);
    const link = await backend.openLink();
    backend.link = link;
    backend.info.size = link.info.size;
    backend.flags = link.info.flags;
    if (link.info.minBlock > 1) backend.aligner = new BlockAligner(link.info.minBlock);
    o.log.info('connected to the NBD server', { op: 'nbd-backend', uri, size: link.info.size, flags: txFlagsText(link.info.flags) });
    return backend;
  }

  /** The server serves this export read-only: so does the export. */
  get readOnly(): boolean {
    return (this.flags & TxFlag.READ_ONLY) !== 0;
  }

  show(): BackendShow {
    return { uri: this.uri.text, state: this._state, reconnects: this._reconnects, reissued: this._reissued, flags: txFlagsText(this.flags) };
  }

  private has(flag: number): boolean {
    return (this.flags & flag) !== 0;
  }

  // ---- Backend ----

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = allocPayload(length);
    try {
      if (this.aligner === null) await this.readInto(offset, buf);
      else await this.aligner.read(offset, buf, this.alignedIo(false));
    } catch (err) {
      releasePayload(buf);
      throw err;
    }
    return buf;
  }

  /** The backend is the WRITE payload's last user: it goes back to the pool once answered. */
  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    try {
      this.writable();
      const a = this.aligner;
      if (a === null) await this.writeData(offset, data, fua);
      else await a.locked(offset, data.length, () => a.merge(offset, data, this.alignedIo(fua)));
    } finally {
      releasePayload(data);
    }
  }

  private readInto(offset: number, into: Buffer): Promise<void> {
    return this.split(into.length, this.maxPayload(), (at, n) =>
      this.request(Cmd.READ, 0, offset + at, n, null, into.subarray(at, at + n)));
  }

  private async writeData(offset: number, data: Buffer, fua: boolean): Promise<void> {
    const nativeFua = fua && this.has(TxFlag.SEND_FUA);
    await this.split(data.length, this.maxPayload(), (at, n) =>
      this.request(Cmd.WRITE, nativeFua ? CmdFlag.FUA : 0, offset + at, n, data.subarray(at, at + n), null));
    if (fua && !nativeFua) await this.flush();
  }

  /** What the aligner sends: aligned reads and writes (the caller keeps the buffers). */
  private alignedIo(fua: boolean): AlignedIo {
    return { read: (o, into) => this.readInto(o, into), write: (o, d) => this.writeData(o, d, fua) };
  }

  flush(): Promise<void> {
    if (!this.has(TxFlag.SEND_FLUSH)) return this.closing ? Promise.reject(this.shutdown()) : Promise.resolve();
    return this.request(Cmd.FLUSH, 0, 0, 0, null, null);
  }

  async trim(offset: number, length: number, fua: boolean): Promise<void> {
    this.writable();
    if (!this.has(TxFlag.SEND_TRIM) || length === 0) return; // an accepted hint
    const nativeFua = fua && this.has(TxFlag.SEND_FUA);
    await this.split(length, MAX_RANGE, (at, n) => this.request(Cmd.TRIM, nativeFua ? CmdFlag.FUA : 0, offset + at, n, null, null));
    if (fua && !nativeFua) await this.flush();
  }

  async writeZeroes(offset: number, length: number, fua: boolean, flags: number): Promise<void> {
    this.writable();
    if (length === 0) return;
    const a = this.aligner;
    if (a === null) return this.zeroRange(offset, length, fua, flags);
    if (!a.aligned(offset, length) && (flags & ZeroFlag.FAST_ZERO) !== 0) throw this.slowZero(offset, length);
    return a.locked(offset, length, () => a.zero(offset, length, (n) => (n <= ZERO_CHUNK ? zeros().subarray(0, n) : Buffer.alloc(n)),
      this.alignedIo(fua), (o, n) => this.zeroRange(o, n, fua, flags)));
  }

  private slowZero(offset: number, length: number): DstError {
    return new DstError('DST_ERR_IO', `NBD server ${this.uri.text}: zeroing ${length} bytes at ${offset} would mean writing zeroes (FAST_ZERO)`,
      { errno: 'ENOTSUP' });
  }

  private async zeroRange(offset: number, length: number, fua: boolean, flags: number): Promise<void> {
    const fast = (flags & ZeroFlag.FAST_ZERO) !== 0;
    if (this.has(TxFlag.SEND_WRITE_ZEROES) && (!fast || this.has(TxFlag.SEND_FAST_ZERO))) {
      const f = ((flags & ZeroFlag.NO_HOLE) !== 0 ? CmdFlag.NO_HOLE : 0) | (fast ? CmdFlag.FAST_ZERO : 0)
        | (fua && this.has(TxFlag.SEND_FUA) ? CmdFlag.FUA : 0);
      await this.split(length, MAX_RANGE, (at, n) => this.request(Cmd.WRITE_ZEROES, f, offset + at, n, null, null));
      if (fua && !this.has(TxFlag.SEND_FUA)) await this.flush();
      return;
    }
    if (fast) throw this.slowZero(offset, length);
    // in order, one bounded chunk at a time: the shared zero buffer is never written to
    for (let at = 0; at < length; at += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, length - at);
      await this.request(Cmd.WRITE, 0, offset + at, n, zeros().subarray(0, n), null);
    }
    if (fua) await this.flush();
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    if (length === 0) return [];
    const ctx = this.link?.info.allocationContext ?? null;
    if (ctx === null || !this.has(TxFlag.HAS_FLAGS)) return [{ offset, length, flags: 0 }];
    const req = this.makeReq(Cmd.BLOCK_STATUS, 0, offset, Math.min(length, MAX_RANGE), null, null);
    await this.enqueue(req);
    return req.extents ?? [{ offset, length: req.length, flags: 0 }];
  }

  /** The server zeroes fast (SEND_WRITE_ZEROES and SEND_FAST_ZERO, as of the last handshake) and may be written. */
  fastZero(): boolean {
    return !this.readOnly && this.has(TxFlag.SEND_WRITE_ZEROES) && this.has(TxFlag.SEND_FAST_ZERO);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.inflight.size > 0 || this.queue.length > 0) {
        if (this._state !== 'connected') this.failAll(() => this.shutdown());
        else await new Promise<void>((resolve) => { this.idle = resolve; });
      }
      this.retry?.cancel();
      this.stopWatchdog();
      this._state = 'closed';
      this.link?.disconnect();
      this.link = null;
    })();
    return this.closing;
  }

  // ---- requests ----

  private maxPayload(): number {
    return this.link?.info.maxPayload ?? 32 * 1024 * 1024;
  }

  private writable(): void {
    if (this.readOnly) throw sysError('EROFS', `NBD server ${this.uri.text} serves the export read-only`);
  }

  private shutdown(): NodeJS.ErrnoException {
    return sysError('ESHUTDOWN', `NBD backend ${this.uri.text} is closing`);
  }

  /** Cut [0, length) into pieces of at most `max` bytes, issued together; settles once all did (they share buffers). */
  private async split(length: number, max: number, piece: (at: number, n: number) => Promise<void>): Promise<void> {
    if (length <= max) return piece(0, length);
    const all: Promise<void>[] = [];
    for (let at = 0; at < length; at += max) all.push(piece(at, Math.min(max, length - at)));
    const failed = (await Promise.allSettled(all)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private makeReq(cmd: number, flags: number, offset: number, length: number, data: Buffer | null, buf: Buffer | null): Req {
    return {
      cmd, flags, offset, length, data, buf, extents: null, error: null, queuedAt: this.o.clock.now(), sentAt: 0, cookie: 0,
      resolve: () => {}, reject: () => {},
    };
  }

  private request(cmd: number, flags: number, offset: number, length: number, data: Buffer | null, buf: Buffer | null): Promise<void> {
    return this.enqueue(this.makeReq(cmd, flags, offset, length, data, buf));
  }

  private enqueue(req: Req): Promise<void> {
    if (this.closing) return Promise.reject(this.shutdown());
    if (this.sizeWrong) return Promise.reject(this.sizeError());
    if (this.queue.length >= MAX_QUEUED) {
      return Promise.reject(sysError('EAGAIN', `NBD backend ${this.uri.text}: ${MAX_QUEUED} requests already wait`));
    }
    return new Promise<void>((resolve, reject) => {
      req.resolve = resolve;
      req.reject = reject;
      this.queue.push(req);
      this.pump();
    });
  }

  private pump(): void {
    const link = this.link;
    if (link === null || this._state !== 'connected') return;
    while (this.inflight.size < MAX_INFLIGHT && this.queue.length > 0) {
      const req = this.queue.shift()!;
      if (req.sentAt !== 0) this._reissued++;
      req.cookie = this.takeCookie();
      req.sentAt = this.o.clock.now();
      this.inflight.set(req.cookie, req);
      link.send(req.cmd, req.flags, req.cookie, req.offset, req.length, req.data);
    }
    this.armWatchdog();
  }

  /** The oldest request on the wire (the map keeps send order). */
  private oldest(): Req | undefined {
    return this.inflight.values().next().value;
  }

  /**
   * A hung server: once the oldest request on the wire has waited resend-timeout for its reply,
   * drop the link (the reconnect re-issues it). One timer, re-armed for the next oldest.
   */
  private armWatchdog(): void {
    const first = this.oldest();
    if (this.watchdog !== null || first === undefined) return;
    const limit = this.o.policy().resendTimeoutMs;
    this.watchdog = this.o.clock.setTimer(first.sentAt + limit - this.o.clock.now(), () => {
      this.watchdog = null;
      const now = this.oldest();
      if (now !== undefined && this.o.clock.now() - now.sentAt >= limit) {
        this.link?.close(new DstError('DST_ERR_TIMEOUT',
          `NBD server ${this.uri.text}: no reply to a ${cmdWord(now.cmd)} of ${now.length} bytes at ${now.offset} within ${limit} ms`, { errno: 'ETIMEDOUT' }));
      } else this.armWatchdog();
    });
  }

  private stopWatchdog(): void {
    this.watchdog?.cancel();
    this.watchdog = null;
  }

  private takeCookie(): number {
    for (;;) {
      const c = this.nextCookie;
      this.nextCookie = this.nextCookie >= 0xffffffff ? 1 : this.nextCookie + 1;
      if (!this.inflight.has(c)) return c;
    }
  }

  private simpleDataLength(cookie: number): number | null {
    const req = this.inflight.get(cookie);
    if (req === undefined) return null;
    return req.cmd === Cmd.READ ? req.length : 0;
  }

  /** A READ's data lands in its buffer straight from the socket (the decoder checks the range). */
  private readTarget(cookie: number): { buf: Buffer; offset: number } | null {
    const req = this.inflight.get(cookie);
    return req !== undefined && req.cmd === Cmd.READ && req.buf !== null ? { buf: req.buf, offset: req.offset } : null;
  }

  private onPiece(p: ReplyPiece): void {
    const req = this.inflight.get(p.cookie)!; // the decoder checked the cookie
    if (p.kind === 'placed') {
      if (p.done) this.settle(req);
      return;
    }
    if (p.kind === 'simple') {
      if (p.error !== 0) req.error = this.serverError(req, nbdErrno(p.error), '');
      else if (p.data !== null) p.data.copy(req.buf!, 0);
      this.settle(req);
      return;
    }
    try {
      this.onChunk(req, p.type, p.payload);
    } catch (err) {
      this.link?.close(err as Error);
      return;
    }
    if (p.done) this.settle(req);
  }

  private onChunk(req: Req, type: number, payload: Buffer): void {
    const c = decodeChunk(type, payload);
    const inRange = (offset: number, length: number): void => {
      if (offset < req.offset || offset + length > req.offset + req.length || req.buf === null) {
        throw new DstError('DST_ERR_BAD_FRAME', `NBD server ${this.uri.text}: reply data [${offset}, +${length}) outside the request [${req.offset}, +${req.length})`, { errno: 'EPROTO' });
      }
    };
    switch (c.type) {
      case 'none': return;
      case 'data':
        inRange(c.offset, c.data.length);
        c.data.copy(req.buf!, c.offset - req.offset);
        return;
      case 'hole':
        inRange(c.offset, c.length);
        req.buf!.fill(0, c.offset - req.offset, c.offset - req.offset + c.length);
        return;
      case 'status':
        if (req.cmd === Cmd.BLOCK_STATUS && c.contextId === this.link?.info.allocationContext) req.extents = this.toExtents(req, c.descriptors);
        return;
      case 'error':
        req.error ??= this.serverError(req, c.errno, c.message);
    }
  }

  /** base:allocation descriptors → extents from the request's offset, clipped to it and MAX_EXTENTS. */
  private toExtents(req: Req, d: Buffer): Extent[] {
    const out: Extent[] = [];
    let at = req.offset;
    const end = req.offset + req.length;
    for (let i = 0; i < d.length && out.length < MAX_EXTENTS && at < end; i += 8) {
      const length = Math.min(d.readUInt32BE(i), end - at);
      if (length === 0) break;
      // the server's flags as they are (an allocated range of zeroes stays 2), unknown bits dropped
      const flags = d.readUInt32BE(i + 4) & (ExtentFlag.HOLE | ExtentFlag.ZERO);
      const last = out[out.length - 1];
      if (last && last.flags === flags) last.length += length;
      else out.push({ offset: at, length, flags });
      at += length;
    }
    return out.length > 0 ? out : [{ offset: req.offset, length: req.length, flags: 0 }];
  }

  private serverError(req: Req, errno: string, message: string): NodeJS.ErrnoException {
    return sysError(errno, `NBD server ${this.uri.text}: ${cmdWord(req.cmd)} of ${req.length} bytes at ${req.offset} failed${message ? `: ${message}` : ''}`);
  }

  private settle(req: Req): void {
    this.inflight.delete(req.cookie);
    if (req.error) req.reject(req.error);
    else req.resolve();
    this.pump();
    if (this.idle && this.inflight.size === 0 && this.queue.length === 0) this.idle();
  }

  private failAll(err: () => Error): void {
    const all = [...this.inflight.values(), ...this.queue];
    this.inflight.clear();
    this.queue = [];
    for (const r of all) r.reject(err());
    if (this.idle) this.idle();
  }

  // ---- reconnect ----

  private async openLink(): Promise<NbdLink> {
    const holder: { link: NbdLink | null } = { link: null };
    holder.link = await NbdLink.open(this.uri, this.o.clock, HANDSHAKE_TIMEOUT_MS,
      { simpleDataLength: (c) => this.simpleDataLength(c), readTarget: (c) => this.readTarget(c) },
      { onPiece: (p) => this.onPiece(p), onClose: (e) => { if (holder.link) this.onLinkClosed(holder.link, e); } });
    return holder.link;
  }

  private onLinkClosed(link: NbdLink, err: Error): void {
    if (link !== this.link) return;
    this.link = null;
    this.stopWatchdog();
    if (this.closing && this._state === 'closed') return;
    // what was on the wire goes first, in the order it was issued
    const back = [...this.inflight.values()];
    this.inflight.clear();
    for (const r of back) { r.error = null; r.extents = null; }
    this.queue = [...back, ...this.queue];
    if (this.closing) {
      this.failAll(() => this.shutdown());
      return;
    }
    this._state = 'reconnecting';
    this.o.log.warn(`lost the NBD server: ${err.message}; reconnecting`, { op: 'nbd-backend', uri: this.uri.text, errno: errnoOf(err), waiting: this.queue.length });
    this.o.onLink?.(false, err.message);
    this.scheduleAttempt();
  }

  private scheduleAttempt(): void {
    const delay = backoffDelay(this.o.policy(), this.failures);
    this.retry = this.o.clock.setTimer(delay, () => { void this.attempt(); });
  }

  private async attempt(): Promise<void> {
    this.retry = null;
    this.expire();
    let link: NbdLink;
    try {
      link = await this.openLink();
    } catch (err) {
      this.failures++;
      this.o.log.info(`reconnect failed: ${(err as Error).message}`, { op: 'nbd-backend', uri: this.uri.text, failures: this.failures });
      if (!this.closing) this.scheduleAttempt();
      return;
    }
    if (this.closing) {
      link.disconnect();
      return;
    }
    if (link.info.size !== this.info.size) {
      this.sizeWrong = true;
      this.failures++; // a wrong server is a failed attempt: the next one backs off further
      this.o.log.error(`the NBD server came back with ${link.info.size} bytes, not ${this.info.size}: failing requests with EIO until it serves ${this.info.size} again`,
        { op: 'nbd-backend', uri: this.uri.text });
      this.failAll(() => this.sizeError(link.info.size));
      link.disconnect();
      this.scheduleAttempt();
      return;
    }
    this.failures = 0;
    this.sizeWrong = false;
    this.link = link;
    this.flags = link.info.flags;
    this._state = 'connected';
    this._reconnects++;
    this.o.log.info('reconnected to the NBD server', { op: 'nbd-backend', uri: this.uri.text, reissued: Math.min(this.queue.length, MAX_INFLIGHT) });
    this.o.onLink?.(true, `reconnected (${this._reconnects})`);
    this.pump();
  }

  /** Requests waiting longer than the policy's deadline fail: their clients have given up. */
  private expire(): void {
    const limit = this.o.clock.now() - deadlineMs(this.o.policy());
    const old = this.queue.filter((r) => r.queuedAt < limit);
    if (old.length === 0) return;
    this.queue = this.queue.filter((r) => r.queuedAt >= limit);
    for (const r of old) r.reject(sysError('EIO', `NBD server ${this.uri.text} unreachable for longer than the deadline`));
  }

  private sizeError(now?: number): NodeJS.ErrnoException {
    return sysError('EIO', `NBD server ${this.uri.text} serves ${now === undefined ? 'another size' : `${now} bytes`}, not the ${this.info.size} it had`);
  }
}

function cmdWord(cmd: number): string {
  return ['read', 'write', 'disc', 'flush', 'trim', 'cache', 'write zeroes', 'block status'][cmd] ?? `command ${cmd}`;
}
