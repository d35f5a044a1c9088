// The local NBD server for one BlockTarget (a remote node's NBD socket, DESIGN §1/§8/§10).
//
// Fixed newstyle with NO_ZEROES; options GO, INFO, LIST, EXPORT_NAME, ABORT, STRUCTURED_REPLY;
// every other option (EXTENDED_HEADERS, STARTTLS, meta contexts, …) → NBD_REP_ERR_UNSUP.
// This file is the one chokepoint for NBD request validation (style §6): commands, flags,
// zero lengths, ranges and permissions are checked here against the target; the export side
// re-checks authoritatively.
//
// Decisions (where the spec leaves room):
// - Zero-length READ/WRITE → EINVAL (the spec calls them unspecified). Zero-length TRIM and
//   WRITE_ZEROES are an empty range: success without touching the target (after the range check).
// - FLUSH ignores its offset/length (reserved; old kernels fill them in).
// - READ longer than MAX_PAYLOAD (the maximum we advertise) → EINVAL; WRITE longer → the
//   decoder refuses it before buffering and the connection is dropped (hard disconnect).
// - NBD_CMD_DISC ignores its flags; there is no reply to carry an error.
// - Block sizes: minimum 1 (the target is byte-addressed), preferred 4096, maximum 32 MiB; sent
//   in every INFO/GO reply (the spec lets the server send them unasked).
// - Graceful close: stop reading, answer requests already buffered with ESHUTDOWN, abandon the
//   unsubmitted rest of a split request with ESHUTDOWN, wait for submitted ones, then end.
//
// Per connection:
//   state 'options'        negotiation (client flags first, then options)
//   state 'transmission'   requests; reading pauses while blocked (target capacity, the
//                          in-flight cap, or MAX_CONN_BYTES of data held for this client)
//   state 'disconnecting'  DISC received (or endpoint draining): no new requests, in-flight ones
//                          still answered, then the socket is ended
//   state 'closed'         socket gone; late done() calls are dropped
import { mkdir, lstat, unlink, chmod } from 'node:fs/promises';
import { dirname } from 'node:path';
import net from 'node:net';
import type { BlockOp, BlockRequest, BlockTarget } from './target.js';
import type { Logger } from '../../util/log.js';
import { realClock, type Clock, type TimerHandle } from '../../util/clock.js';
import { DstError, errnoOf } from '../../util/errors.js';
import { peerText } from '../../util/escape.js';
import { checkSocketPath } from '../paths.js';
import {
  NbdServerDecoder, type NbdMessage, type RequestMessage,
  ClientFlag, Cmd, CmdFlag, HandshakeFlag, Info, NbdErr, Opt, Rep, TxFlag, MAX_PAYLOAD,
  encodeGreeting, encodeOptionAck, encodeOptionError, encodeRepServer, encodeInfoExport,
  encodeInfoName, encodeInfoBlockSize, encodeExportNameReply, encodeSimpleReply,
  encodeOffsetDataChunk, encodeErrorChunk, parseInfoRequest, toNbdError, optName, cmdName, nbdErrName,
} from '../../protocol/nbd.js';
import { payloadPool, releasePayload } from '../io/payload-pool.js';
import { normalizePeerAddress } from '../../util/parse.js';
import { DEFAULT_POLICY } from '../types.js';
import { ReportLimiter, addrCapExceeded, type AddrCaps } from '../admission.js';

export interface NbdEndpointOptions {
  target: BlockTarget;
  /** unix socket path (created 0600; a stale socket there is removed); null = none */
  socketPath: string | null;
  /** optional TCP listener; port 0 = any free port */
  tcp: { host: string; port: number } | null;
  log: Logger;
  /** most simultaneous client connections (default 64) */
  maxConnections?: number;
  /**
   * A client that has not finished option negotiation this long after connecting is cut off
   * (default HANDSHAKE_TIMEOUT_MS), so silent or stuck clients cannot hold the connection slots.
   */
  handshakeTimeoutMs?: number;
  /** timers (default the real clock; tests pass a FakeClock) */
  clock?: Clock;
  /** per-address caps for the TCP listener, read at each accept (default the policy defaults) */
  addrCaps?: () => AddrCaps;
}

export const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface NbdEndpoint {
  readonly socketPath: string | null;
  /** the bound TCP address (real port when 0 was asked), or null */
  readonly tcpAddress: { host: string; port: number } | null;
  /** nbd+unix:///?socket=PATH (or nbd://host:port/ when only TCP is served) */
  readonly uri: string;
  /** open client connections */
  readonly connections: number;
  /** Stop accepting. Graceful: wait for in-flight replies, then close. force: destroy at once. */
  close(opts?: { force: boolean }): Promise<void>;
}

export const BLOCK_MIN = 1;
export const BLOCK_PREFERRED = 4096;
export const BLOCK_MAX = MAX_PAYLOAD;
/** NBD requests per connection accepted and not yet answered (then the socket is not read). */
export const MAX_CONN_INFLIGHT = 128;
/**
 * Bytes per connection (in-flight READ/WRITE lengths + unsent reply bytes) above which the socket
 * is not read. One request of up to MAX_PAYLOAD is always taken when under the bound.
 */
export const MAX_CONN_BYTES = 64 * 1024 * 1024;
/** Size of the buffer each connection's socket reads into (when not straight into a payload). */
const READ_CHUNK = 64 * 1024;
/** Bytes still read (and held) after pauseReading(), as a paused net.Socket would. */
const READ_AHEAD = 64 * 1024;
/** After we end a socket, how long the peer gets to close its side. */
const END_GRACE_MS = 2000;

/** Block op per NBD command (indexed by command; undefined = unsupported). */
const OPS: readonly (BlockOp | undefined)[] = (() => {
  const t: (BlockOp | undefined)[] = [];
  t[Cmd.READ] = 'read'; t[Cmd.WRITE] = 'write'; t[Cmd.FLUSH] = 'flush'; t[Cmd.TRIM] = 'trim'; t[Cmd.WRITE_ZEROES] = 'write-zeroes';
  return t;
})();
/** Command flags valid per command (DF is not advertised, so never valid). */
const ALLOWED_FLAGS: readonly number[] = (() => {
  const t: number[] = [];
  t[Cmd.READ] = CmdFlag.FUA; t[Cmd.WRITE] = CmdFlag.FUA; t[Cmd.FLUSH] = CmdFlag.FUA; t[Cmd.TRIM] = CmdFlag.FUA;
  t[Cmd.WRITE_ZEROES] = CmdFlag.FUA | CmdFlag.NO_HOLE;
  return t;
})();

export function nbdUnixUri(socketPath: string): string {
  return `nbd+unix:///?socket=${encodeURIComponent(socketPath).replace(/%2F/gi, '/')}`;
}

function nbdTcpUri(host: string, port: number): string {
  return `nbd://${host.includes(':') ? `[${host}]` : host}:${port}/`;
}

export async function startNbdEndpoint(opts: NbdEndpointOptions): Promise<NbdEndpoint> {
  const { target, socketPath, tcp } = opts;
  if (socketPath === null && tcp === null) {
    throw new DstError('DST_ERR_INVALID', `node ${target.name}: an NBD endpoint needs a socket path or a TCP address`);
  }
  const log = opts.log.child({ node: target.name, op: 'nbd' });
  const conns = new Set<NbdConnection>();
  const servers: net.Server[] = [];
  let nextId = 1;
  let closing: Promise<void> | null = null;
  let closedResolve: (() => void) | null = null;
  const allClosed = new Promise<void>((resolve) => { closedResolve = resolve; });
  const checkAllClosed = (): void => { if (closing !== null && conns.size === 0) closedResolve?.(); };

  const handshake = { clock: opts.clock ?? realClock, ms: opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS };
  const reports = new ReportLimiter(handshake.clock);
  const addrCaps = opts.addrCaps ?? ((): AddrCaps => DEFAULT_POLICY);
  const onConnection = (accepted: net.Socket): void => {
    if (closing !== null) { accepted.destroy(); return; }
    // TCP peers are admitted by address before they cost anything (NBD has no ACL, only the caps);
    // NBD has no refusal before the greeting, so the socket is just closed.
    const addr = accepted.remoteAddress === undefined ? null : normalizePeerAddress(accepted.remoteAddress);
    const over = addr === null ? null : addrCapExceeded(conns, addr, addrCaps());
    if (over !== null) {
      const report = reports.take(addr!);
      if (report !== null) log.warn(`NBD connection refused: ${over}`, { addr, suppressed: report.suppressed });
      accepted.destroy();
      return;
    }
    // Reads into buffers we choose (see adoptWithUserBuffer); the plain socket if that fails.
    let conn: NbdConnection | null = null;
    const scratch = Buffer.allocUnsafe(READ_CHUNK);
    const adopted = adoptWithUserBuffer(accepted,
      () => (conn !== null ? conn.readTarget(scratch) : scratch),
      (n, buf) => { conn?.onBytes(buf.subarray(0, n), true); });
    const socket = adopted ?? accepted;
    if (socket.remoteAddress !== undefined) socket.setNoDelay(true);
    const c = new NbdConnection(socket, addr ?? 'unix', target, log.child({ conn: nextId++ }), adopted === null, handshake, () => {
      conns.delete(c);
      checkAllClosed();
    });
    conn = c;
    conns.add(c);
    if (adopted === null) accepted.resume();
  };

  const listen = (server: net.Server, how: string, arg: () => void): Promise<void> => new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new DstError('DST_ERR_BUSY', `node ${target.name}: cannot listen for NBD on ${how}: ${err.message}`, { errno: errnoOf(err), cause: err }));
    };
    server.once('error', onError);
    server.once('listening', () => { server.off('error', onError); resolve(); });
    arg();
  });

  const makeServer = (): net.Server => {
    const s = net.createServer({ allowHalfOpen: false, pauseOnConnect: true }, onConnection);
    s.maxConnections = opts.maxConnections ?? 64;
    s.on('error', (err) => log.error('NBD listener error', { errno: errnoOf(err), error: err.message }));
    servers.push(s);
    return s;
  };

  let tcpAddress: { host: string; port: number } | null = null;
  try {
    if (socketPath !== null) {
      checkSocketPath(socketPath, 'NBD socket path');
      await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
      await removeStaleSocket(socketPath);
      const s = makeServer();
      await listen(s, socketPath, () => s.listen(socketPath));
      await chmod(socketPath, 0o600);
    }
    if (tcp !== null) {
      const s = makeServer();
      await listen(s, `${tcp.host}:${tcp.port}`, () => s.listen(tcp.port, tcp.host));
      const a = s.address();
      tcpAddress = a !== null && typeof a === 'object' ? { host: tcp.host, port: a.port } : { host: tcp.host, port: tcp.port };
    }
  } catch (err) {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    throw err;
  }

  const uri = socketPath !== null ? nbdUnixUri(socketPath) : nbdTcpUri(tcpAddress!.host, tcpAddress!.port);
  log.info('NBD endpoint serving', { socket: socketPath, tcp: tcpAddress ? `${tcpAddress.host}:${tcpAddress.port}` : null });

  return {
    socketPath,
    tcpAddress,
    uri,
    get connections() { return conns.size; },
    async close(closeOpts = { force: false }) {
      const force = closeOpts.force;
      if (closing === null) {
        closing = (async () => {
          // Closing a unix-socket server unlinks its socket file (libuv); we do not unlink it
          // ourselves, so a newer endpoint on the same path is never clobbered.
          await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
          await allClosed;
          log.info('NBD endpoint closed');
        })();
      }
      for (const c of [...conns]) c.shutdown(force);
      checkAllClosed();
      await closing;
    },
  };
}

/**
 * Remove a socket left by an earlier engine. Refuses a path that is not a socket, and a socket
 * somebody still accepts connections on (another engine serving the same node).
 */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    const st = await lstat(path);
    if (!st.isSocket()) throw new DstError('DST_ERR_EXISTS', `${path} exists and is not a socket`, { errno: 'EEXIST' });
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    throw err;
  }
  if (await socketIsLive(path)) {
    throw new DstError('DST_ERR_BUSY', `another process is serving on ${path}`, { errno: 'EADDRINUSE' });
  }
  await unlink(path).catch((err: unknown) => { if (errnoOf(err) !== 'ENOENT') throw err; });
}

/**
 * Move an accepted (paused) socket's handle into a new net.Socket that reads with `onread`: into
 * the buffer `buffer()` returns (a reused scratch buffer, or straight into the WRITE payload
 * being assembled), handing each read to `callback` synchronously. net.Server offers no
 * `onread` for accepted sockets, and without it Node allocates a fresh 64 KiB buffer for every
 * read: at 1 GB/s of writes that garbage alone forces a full mark-compact every few dozen
 * milliseconds, about a third of the engine's CPU (bench/README.md).
 *
 * This relies on net.Socket's `handle` option and `_handle` property (Node internals, used by
 * net.Server and child_process themselves). Anything unexpected → null, and the caller keeps
 * the accepted socket as it is ('data' events). The accepted socket, now handle-less, is
 * destroyed when the adopted one closes, so the server's connection count stays right.
 */
export function adoptWithUserBuffer(accepted: net.Socket, buffer: () => Buffer,
  callback: (n: number, buf: Buffer) => void): net.Socket | null {
  const inner = accepted as unknown as { _handle?: { readStart?: unknown } | null };
  const handle = inner._handle;
  if (!handle || typeof handle.readStart !== 'function' || accepted.readableFlowing === true) return null;
  let adopted: net.Socket;
  try {
    inner._handle = null;
    adopted = new net.Socket({
      handle, readable: true, writable: true, allowHalfOpen: accepted.allowHalfOpen,
      onread: { buffer, callback: (n: number, buf: Uint8Array) => { callback(n, buf as Buffer); return true; } },
    } as net.SocketConstructorOpts);
  } catch {
    inner._handle = handle;
    return null;
  }
  adopted.once('close', () => accepted.destroy());
  return adopted;
}

function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    const done = (live: boolean): void => { clearTimeout(timer); s.destroy(); resolve(live); };
    const timer = setTimeout(() => done(true), 1000);
    s.once('connect', () => done(true));
    s.once('error', () => done(false)); // ECONNREFUSED: nobody listens
  });
}

// ── One client connection ────────────────────────────────────────────────────────────────────

/**
 * One NBD request being executed: possibly several submits, answered once. While pieces are
 * unissued it is also the connection's job (at most one: the unsubmitted remainder of a split
 * request, or a request waiting for target capacity). One object per request, nothing else.
 */
interface Reply {
  req: RequestMessage;
  op: BlockOp;
  /** read result of a single-piece read */
  data: Buffer | null;
  /** read results per piece, in order, when the read is split; null otherwise */
  pieces: (Buffer | null)[] | null;
  /** submits issued and not completed */
  outstanding: number;
  /** pieces not yet submitted */
  unissued: number;
  /** first failing errno (symbolic) */
  errno: string | null;
  answered: boolean;
  next: number;       // next offset to submit
  end: number;        // offset + length
  piece: number;      // index of the next piece
  pieceSize: number;
  fua: boolean;
}

type ConnState = 'options' | 'transmission' | 'disconnecting' | 'closed';
type Blocked = null | 'capacity' | 'inflight' | 'bytes';

class NbdConnection {
  private state: ConnState = 'options';
  private readonly decoder = new NbdServerDecoder({ payloads: payloadPool });
  private structured = false;
  private noZeroes = false;
  private inflight = 0;
  /** READ/WRITE bytes of accepted requests not yet answered */
  private inflightBytes = 0;
  private job: Reply | null = null;
  private blocked: Blocked = null;
  private unsubscribeCapacity: (() => void) | null = null;
  private pumping = false;
  private draining = false;
  private ended = false;
  private corked = false;
  /** pauseReading() is in force */
  private readPaused = false;
  /** cuts the client off if option negotiation is not over in time */
  private handshakeTimer: TimerHandle | null;

  constructor(
    private readonly socket: net.Socket,
    /** the TCP peer's address ("unix" on the unix socket), for the per-address caps */
    readonly addr: string,
    private readonly target: BlockTarget,
    private readonly log: Logger,
    private readonly dataEvents: boolean,
    handshake: { clock: Clock; ms: number },
    private readonly onClose: () => void,
  ) {
    this.handshakeTimer = handshake.clock.setTimer(handshake.ms, () => {
      this.handshakeTimer = null;
      if (this.state !== 'options') return;
      this.log.warn('NBD client did not finish the handshake in time; closing it', { timeoutMs: handshake.ms });
      this.socket.destroy();
    });
    if (dataEvents) socket.on('data', (chunk: Buffer) => this.onBytes(chunk, false));
    socket.on('drain', () => this.maybeUnblockBytes());
    socket.on('error', (err) => this.log.debug('NBD connection error', { errno: errnoOf(err), error: err.message }));
    socket.on('close', () => {
      this.state = 'closed';
      this.handshakeTimer?.cancel();
      this.handshakeTimer = null;
      this.blocked = null;
      this.unsubscribeCapacity?.();
      this.unsubscribeCapacity = null;
      this.job = null;
      if (this.inflight > 0) this.log.debug('NBD connection closed with requests in flight', { inflight: this.inflight });
      this.log.debug('NBD connection closed');
      this.onClose();
    });
    this.log.debug('NBD connection opened');
    this.send(encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES));
  }

  /** Still haggling options (counted against max-handshakes-per-addr). */
  get handshaking(): boolean {
    return this.state === 'options';
  }

  /** Endpoint close: force destroys; graceful answers what is buffered, waits, then ends. */
  shutdown(force: boolean): void {
    if (this.state === 'closed') return;
    if (force) { this.socket.destroy(); return; }
    if (this.state === 'options') { this.endSocket(); return; }
    if (this.draining) return;
    this.draining = true;
    this.pauseReading();
    this.dropCapacityWait();
    this.blocked = null;
    this.pump();
    this.maybeFinish();
  }

  // ── Reading ──────────────────────────────────────────────────────────────────────────────

  /** Bytes read; transient: `chunk` is overwritten once this returns (a reused read buffer). */
  onBytes(chunk: Buffer, transient: boolean): void {
    if (this.state === 'closed' || this.state === 'disconnecting') return; // discard after DISC
    if (transient) this.decoder.feedTransient(chunk);
    else this.decoder.feed(chunk);
    this.pump();
    if (this.readPaused && this.decoder.buffered >= READ_AHEAD) this.socket.pause();
  }

  /**
   * Stop taking requests from the socket. Like a paused net.Socket (which keeps reading into its
   * buffer up to its high-water mark), up to READ_AHEAD bytes are still read and held in the
   * decoder, so a client that closes while we wait is noticed; then reading stops.
   */
  private pauseReading(): void {
    this.readPaused = true;
    if (this.dataEvents || this.decoder.buffered >= READ_AHEAD) this.socket.pause();
  }

  private resumeReading(): void {
    this.readPaused = false;
    this.socket.resume();
  }

  /** Where the next read should land (a WRITE payload being assembled, or `scratch`). */
  readTarget(scratch: Buffer): Buffer {
    return this.decoder.readTarget(scratch);
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.state === 'options' || this.state === 'transmission') {
        if (this.blocked !== null) return;
        if (this.job !== null && !this.continueJob()) { this.block('capacity'); return; }
        if (!this.draining) {
          if (this.inflight >= MAX_CONN_INFLIGHT) { this.block('inflight'); return; }
          if (this.heldBytes() > MAX_CONN_BYTES) { this.block('bytes'); return; }
        }
        let msg: NbdMessage | null;
        try {
          msg = this.decoder.next();
        } catch (err) {
          this.log.warn('NBD protocol error, dropping the connection', { error: (err as Error).message });
          this.socket.destroy();
          return;
        }
        if (msg === null) return;
        this.handle(msg);
      }
    } finally {
      this.pumping = false;
    }
  }

  private block(reason: Exclude<Blocked, null>): void {
    this.blocked = reason;
    this.pauseReading();
    if (reason === 'capacity') {
      this.unsubscribeCapacity = this.target.onCapacity(() => {
        // Resume outside the target's call stack.
        if (this.blocked === 'capacity') queueMicrotask(() => { if (this.blocked === 'capacity') this.unblock(); });
      });
    }
  }

  private unblock(): void {
    this.dropCapacityWait();
    this.blocked = null;
    if (this.state === 'closed') return;
    if (!this.draining && this.state !== 'disconnecting') this.resumeReading();
    this.pump();
    this.maybeFinish();
  }

  private heldBytes(): number {
    return this.inflightBytes + this.socket.writableLength;
  }

  private maybeUnblockBytes(): void {
    if (this.blocked === 'bytes' && this.heldBytes() <= MAX_CONN_BYTES) this.unblock();
  }

  private dropCapacityWait(): void {
    this.unsubscribeCapacity?.();
    this.unsubscribeCapacity = null;
  }

  private handle(msg: NbdMessage): void {
    switch (msg.kind) {
      case 'client-flags': return this.handleClientFlags(msg.flags);
      case 'option': return this.handleOption(msg.option, msg.data);
      case 'request': return this.handleRequest(msg);
    }
  }

  // ── Negotiation ──────────────────────────────────────────────────────────────────────────

  private handleClientFlags(flags: number): void {
    const known = ClientFlag.C_FIXED_NEWSTYLE | ClientFlag.C_NO_ZEROES;
    if ((flags & ~known) !== 0) {
      this.log.warn('NBD client sent unknown client flags, dropping the connection', { flags: `0x${flags.toString(16)}` });
      this.socket.destroy();
      return;
    }
    this.noZeroes = (flags & ClientFlag.C_NO_ZEROES) !== 0;
  }

  private exportNameOk(name: string): boolean {
    return name === '' || name === this.target.name;
  }

  /**
   * CAN_MULTI_CONN holds: every connection submits to the same target (one transaction table, one
   * export), a WRITE is answered only once the export has it, and the export's FLUSH is one
   * fdatasync of the whole file, so a flush on any connection covers writes answered on all.
   */
  private txFlags(): number {
    let f = TxFlag.HAS_FLAGS | TxFlag.SEND_FLUSH | TxFlag.SEND_FUA | TxFlag.SEND_TRIM | TxFlag.SEND_WRITE_ZEROES | TxFlag.CAN_MULTI_CONN;
    if (!this.target.permissions().includes('w')) f |= TxFlag.READ_ONLY;
    return f;
  }

  private handleOption(option: number, data: Buffer): void {
    this.log.debug('NBD option', { option: optName(option), length: data.length });
    switch (option) {
      case Opt.EXPORT_NAME: {
        const name = data.toString('utf8');
        if (!this.exportNameOk(name)) {
          this.log.warn('NBD client asked for an unknown export, dropping the connection', { export: peerText(name) });
          this.socket.destroy();
          return;
        }
        this.send(encodeExportNameReply(this.target.size(), this.txFlags(), this.noZeroes));
        this.enterTransmission();
        return;
      }
      case Opt.ABORT:
        this.send(encodeOptionAck(option));
        this.endSocket();
        return;
      case Opt.LIST:
        if (data.length !== 0) {
          this.send(encodeOptionError(option, Rep.ERR_INVALID, 'NBD_OPT_LIST takes no data'));
          return;
        }
        this.send(encodeRepServer(option, this.target.name));
        this.send(encodeOptionAck(option));
        return;
      case Opt.INFO:
      case Opt.GO: {
        let info;
        try {
          info = parseInfoRequest(data);
        } catch (err) {
          this.send(encodeOptionError(option, Rep.ERR_INVALID, (err as Error).message));
          return;
        }
        if (!this.exportNameOk(info.name)) {
          this.send(encodeOptionError(option, Rep.ERR_UNKNOWN, `unknown export "${peerText(info.name)}"; this server has "${this.target.name}"`));
          return;
        }
        this.send(encodeInfoExport(option, this.target.size(), this.txFlags()));
        this.send(encodeInfoBlockSize(option, BLOCK_MIN, BLOCK_PREFERRED, BLOCK_MAX));
        if (info.infos.includes(Info.NAME)) this.send(encodeInfoName(option, this.target.name));
        // Unknown info requests (and DESCRIPTION, which we do not have) are ignored.
        this.send(encodeOptionAck(option));
        if (option === Opt.GO) this.enterTransmission();
        return;
      }
      case Opt.STRUCTURED_REPLY:
        if (data.length !== 0) {
          this.send(encodeOptionError(option, Rep.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data'));
        } else if (this.structured) {
          this.send(encodeOptionError(option, Rep.ERR_INVALID, 'structured replies already negotiated'));
        } else {
          this.structured = true;
          this.send(encodeOptionAck(option));
        }
        return;
      default:
        this.send(encodeOptionError(option, Rep.ERR_UNSUP, `${optName(option)} is not supported by this server`));
        return;
    }
  }

  private enterTransmission(): void {
    this.state = 'transmission';
    this.handshakeTimer?.cancel();
    this.handshakeTimer = null;
    this.decoder.phase = 'transmission';
    this.log.debug('NBD transmission phase', { structured: this.structured });
  }

  // ── Transmission ─────────────────────────────────────────────────────────────────────────

  private handleRequest(req: RequestMessage): void {
    if (req.type === Cmd.DISC) {
      this.log.debug('NBD disconnect requested', { inflight: this.inflight });
      this.state = 'disconnecting';
      this.dropCapacityWait();
      this.blocked = null;
      this.resumeReading(); // keep reading so the peer's close is seen; data is discarded
      this.maybeFinish();
      return;
    }
    if (this.draining) return this.reject(req, 'ESHUTDOWN', 'the NBD endpoint is shutting down');
    const op = req.type < OPS.length ? OPS[req.type] : undefined;
    if (op === undefined) return this.reject(req, 'EINVAL', `unsupported command ${cmdName(req.type)}`);
    const allowed = ALLOWED_FLAGS[req.type] ?? 0;
    if ((req.flags & ~allowed) !== 0) {
      return this.reject(req, 'EINVAL', `invalid flags 0x${req.flags.toString(16)} for ${cmdName(req.type)}`);
    }
    if ((op === 'read' || op === 'write') && req.length === 0) return this.reject(req, 'EINVAL', `zero-length ${cmdName(req.type)}`);
    if (op === 'read' && req.length > MAX_PAYLOAD) {
      return this.reject(req, 'EINVAL', `read of ${req.length} bytes exceeds the maximum payload ${MAX_PAYLOAD}`);
    }
    const perms = this.target.permissions();
    const writes = op === 'write' || op === 'trim' || op === 'write-zeroes';
    if (writes && !perms.includes('w')) return this.reject(req, 'EPERM', 'the export is read-only');
    if (op === 'read' && !perms.includes('r')) return this.reject(req, 'EPERM', 'the export is write-only');
    if (op !== 'flush') {
      const size = this.target.size();
      if (req.offset + req.length > size) {
        return this.reject(req, op === 'write' || op === 'write-zeroes' ? 'ENOSPC' : 'EINVAL',
          `${cmdName(req.type)} ${req.offset}+${req.length} is past the end (${size})`);
      }
      if (req.length === 0) { this.sendReply(req, null, null); return; } // empty trim/zero range
    }

    const maxReq = Math.max(1, Math.floor(Math.min(this.target.maxRequest(), MAX_PAYLOAD)));
    const pieces = op === 'flush' ? 1 : Math.ceil(req.length / maxReq);
    this.inflight++;
    if (op === 'read' || op === 'write') this.inflightBytes += req.length;
    this.job = {
      req, op,
      data: null,
      pieces: op === 'read' && pieces > 1 ? new Array<Buffer | null>(pieces).fill(null) : null,
      outstanding: 0,
      unissued: pieces,
      errno: null,
      answered: false,
      next: op === 'flush' ? 0 : req.offset,
      end: op === 'flush' ? 0 : req.offset + req.length,
      piece: 0,
      pieceSize: maxReq,
      fua: op !== 'read' && op !== 'flush' && (req.flags & CmdFlag.FUA) !== 0,
    };
    // continueJob runs from pump(); when there is no capacity pump() blocks on it.
  }

  /** Submit pieces while the target has capacity. true when the job is fully issued. */
  private continueJob(): boolean {
    const job = this.job!;
    const reply = job;
    while (reply.unissued > 0) {
      if (this.draining || this.state !== 'transmission') {
        this.abandon(reply, 'ESHUTDOWN');
        break;
      }
      if (!this.target.hasCapacity()) return false;
      const offset = job.next;
      const length = reply.op === 'flush' ? 0 : Math.min(job.pieceSize, job.end - offset);
      const index = job.piece;
      const whole = reply.op === 'write' ? reply.req.payload! : null;
      const payload = whole === null ? null
        : length === whole.length ? whole : whole.subarray(offset - reply.req.offset, offset - reply.req.offset + length);
      const breq: BlockRequest = { op: reply.op, offset, length, payload, fua: job.fua };
      job.next += length;
      job.piece++;
      reply.unissued--;
      reply.outstanding++;
      let called = false;
      try {
        this.target.submit(breq, (errno, data) => {
          if (called) {
            this.log.warn('BlockTarget completed a request twice; ignored', { cmd: cmdName(reply.req.type), offset, length });
            return;
          }
          called = true;
          this.pieceDone(reply, index, length, errno, data);
        });
      } catch (err) {
        called = true;
        reply.outstanding--;
        this.log.error('BlockTarget refused a request', { cmd: cmdName(reply.req.type), offset, length, error: (err as Error).message });
        this.abandon(reply, errnoOf(err) ?? 'EIO');
        break;
      }
    }
    this.job = null;
    this.maybeAnswer(reply);
    return true;
  }

  /** Give up on the unsubmitted pieces of a request. */
  private abandon(reply: Reply, errno: string): void {
    reply.unissued = 0;
    if (reply.errno === null) reply.errno = errno;
  }

  private pieceDone(reply: Reply, index: number, length: number, errno: string | null, data: Buffer | null): void {
    reply.outstanding--;
    if (errno !== null) {
      if (reply.errno === null) reply.errno = errno;
    } else if (reply.op === 'read') {
      if (data === null || data.length !== length) {
        this.log.error('BlockTarget returned a short read', { expected: length, got: data?.length ?? null });
        if (reply.errno === null) reply.errno = 'EIO';
      } else if (reply.pieces !== null) {
        reply.pieces[index] = data;
      } else {
        reply.data = data;
      }
    }
    this.maybeAnswer(reply);
  }

  private maybeAnswer(reply: Reply): void {
    if (reply.answered || reply.outstanding > 0 || reply.unissued > 0) return;
    reply.answered = true;
    this.inflight--;
    if (reply.op === 'read' || reply.op === 'write') this.inflightBytes -= reply.req.length;
    if (this.state === 'closed') {
      this.log.debug('NBD reply dropped: connection closed', { cmd: cmdName(reply.req.type), errno: reply.errno });
      return;
    }
    if (reply.errno !== null) {
      const nbdErr = toNbdError(reply.errno);
      this.log.debug('NBD request failed', {
        cmd: cmdName(reply.req.type), offset: reply.req.offset, length: reply.req.length, errno: reply.errno, nbdError: nbdErrName(nbdErr),
      });
      this.sendReply(reply.req, reply.errno, `${cmdName(reply.req.type)} failed: ${reply.errno}`);
    } else {
      this.sendReply(reply.req, null, null, reply.pieces !== null ? reply.pieces as Buffer[] : reply.data);
      // A WRITE that succeeded: the export has all its bytes, so nothing reads its payload
      // again (the transaction is complete, never replayed). Failed ones are never released:
      // a frame stuck in a dead socket's queue could still be written from it.
      if (reply.op === 'write') releasePayload(reply.req.payload);
    }
    if (this.blocked === 'inflight' && this.inflight < MAX_CONN_INFLIGHT) this.unblock();
    else if (this.blocked === 'bytes') this.maybeUnblockBytes();
    else this.maybeFinish();
  }

  /** Refuse a request at the edge; the connection is kept. */
  private reject(req: RequestMessage, errno: string, message: string): void {
    this.log.debug('NBD request refused', { cmd: cmdName(req.type), offset: req.offset, length: req.length, errno });
    this.sendReply(req, errno, message);
  }

  private sendReply(req: RequestMessage, errno: string | null, message: string | null, data: Buffer | Buffer[] | null = null): void {
    const isRead = req.type === Cmd.READ;
    if (errno !== null) {
      const err = toNbdError(errno);
      if (isRead && this.structured) this.send(encodeErrorChunk(req.cookie, err, message ?? '', true));
      else this.send(encodeSimpleReply(req.cookie, err));
      return;
    }
    if (isRead && data !== null) {
      const parts = this.structured ? encodeOffsetDataChunk(req.cookie, req.offset, data, true)
        : Buffer.isBuffer(data) ? [encodeSimpleReply(req.cookie, NbdErr.OK), data] : [encodeSimpleReply(req.cookie, NbdErr.OK), ...data];
      // Read data goes back to the payload pool once the socket is done with it.
      this.send(parts, Buffer.isBuffer(data) ? () => releasePayload(data) : () => { for (const d of data) releasePayload(d); });
      return;
    }
    this.send(encodeSimpleReply(req.cookie, NbdErr.OK));
  }

  /** After DISC or while draining: end once every accepted request is answered. */
  private maybeFinish(): void {
    if (this.inflight > 0 || this.job !== null || this.state === 'closed') return;
    if (this.state === 'disconnecting') { this.endSocket(); return; }
    // Draining: pump() answers what is buffered (ESHUTDOWN) before this may end the socket.
    if (this.draining && !this.pumping) this.endSocket();
  }

  // ── Writing ──────────────────────────────────────────────────────────────────────────────

  /** Queue bytes; everything queued while handling one event goes out in one writev. */
  /** written: runs once the socket is done with the bytes (written, or the socket failed) */
  private send(bufs: Buffer | Buffer[], written?: () => void): void {
    if (this.ended || this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      // nextTick, not setImmediate: the replies of one socket event (a burst of IO_RESPONSEs)
      // still leave in one writev, without an extra zero-timeout epoll_wait per event-loop turn.
      process.nextTick(() => this.uncork());
    }
    if (Buffer.isBuffer(bufs)) {
      this.socket.write(bufs, written);
    } else {
      const last = bufs.length - 1;
      for (let i = 0; i < last; i++) this.socket.write(bufs[i]!);
      this.socket.write(bufs[last]!, written);
    }
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    if (!this.socket.destroyed) this.socket.uncork();
    this.maybeUnblockBytes();
  }

  private endSocket(): void {
    if (this.ended) return;
    this.uncork();
    this.ended = true;
    if (this.state !== 'closed') this.state = 'disconnecting'; // nothing more is processed
    this.resumeReading();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), END_GRACE_MS).unref();
  }
}
