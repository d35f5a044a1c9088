// One client connection of an export node: reads frames, runs the handshake's phases (the
// decisions are handshake.ts's), joins the session (session.ts: admission, fencing, dedup), then
// transmits: PING → PONG, IO → validate → dedup → backend → IO_RESPONSE, and closes.
//
// After the handshake every frame in each direction goes through a SealedChannel (sequence numbers
// from 0, header authenticated, large frames sealed/opened in the crypto pool, written and
// delivered in order). The whole handshake, AUTH included, is bounded by the HELLO timeout.
//
// Reading is pull-style: socket chunks are fed to a FrameDecoder and frames are pulled while the
// connection may take them. At the per-connection in-flight cap, or at MAX_BYTES_IN_FLIGHT of
// data in flight (replies piling up unread, large writes), the socket is paused; frames already
// received are still pulled, so PINGs among them are answered at once, and IO frames wait in
// `waiting` until a backend call finishes or the socket drains.
import { ReadGate } from '../io/read-gate.js';
import { TurnWriter } from '../io/turn-writer.js';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import { errnoNumber, errnoOf } from '../../util/errors.js';
import {
  Cmd, FrameDecoder, HEADER_SIZE, MAX_PAYLOAD, cmdName, decodeHello, encodeFrame, encodeRefusal,
  type Frame, type FrameInit, type Hello,
} from '../../protocol/wire.js';
import { payloadPool, releasePayload } from '../io/payload-pool.js';
import type { DirectionKeys, Suite } from '../../protocol/suites.js';
import { NO_KEYS, SealedChannel, type FrameCrypto } from '../channel.js';
import { accessName } from './acl.js';
import {
  LINGER_MS, clientProofOk, firstHeaderProblem, decideHello, serverAuth, wipeKeys, type PendingAuth,
} from './handshake.js';
import { MAX_BYTES_IN_FLIGHT, Requests, type RequestNode } from './requests.js';
import type { HeldClaim } from './mirror-claims.js';

/** Frames being opened (crypto pool) before the socket is paused. */
export const MAX_PENDING_OPENS = 32;

/**
 * What a connection needs from its export node: what the handshake and the requests read (config,
 * ACL, session layer, counters, disk), its log, clock and crypto pool, and to hear of its close.
 * The rest (listener, admission at accept, lifecycle) is the node's business.
 */
export interface ExportHost extends RequestNode<Connection> {
  readonly log: Logger;
  readonly clock: Clock;
  /** the engine-wide crypto pool (large frames are sealed/opened on its workers) */
  readonly cryptoPool: FrameCrypto | null;
  connectionClosed(conn: Connection): void;
}

type Phase =
  | 'hello'      // waiting for HELLO
  | 'handshake'  // HELLO (or AUTH) received: checks / key loading / fencing wait; nothing more is read
  | 'auth'       // HELLO_REPLY sent; waiting for the client's AUTH
  | 'serving'
  | 'closing'    // no new requests; ends once in-flight calls answered
  | 'lingering'  // our FIN sent (refusal, drain); input discarded until the peer closes
  | 'closed';    // destroyed (or fenced): never parse another byte

export class Connection {
  /** peer address, IPv4-mapped normalised by the ACL code */
  readonly peer: string;
  /** "ip:port" of the peer, for logs */
  readonly label: string;
  private phase: Phase = 'hello';
  private readonly decoder = new FrameDecoder(MAX_PAYLOAD, payloadPool);
  private headerChecked = false;
  private preHeader: Buffer | null = null;
  private helloTimer: TimerHandle | null = null;
  private lingerTimer: TimerHandle | null = null;
  /** the IO requests: session, grant, in-flight window */
  private readonly requests: Requests<Connection>;
  private closeReason: string | null = null;
  /** the sealed channel, once the handshake is done */
  private channel: SealedChannel | null = null;
  /** between HELLO_REPLY and the client's AUTH */
  private pendingAuth: PendingAuth | null = null;
  /** HELLO_REPLY went out (a later refusal is an AUTH frame) */
  private replied = false;
  private reconnected = false;
  private announced = false;
  private closedHandled = false;
  private readonly reading: ReadGate;
  private readonly log: Logger;
  private readonly out: TurnWriter;

  constructor(private readonly host: ExportHost, readonly socket: Socket, userBuffer = false) {
    this.peer = socket.remoteAddress ?? 'unknown';
    const port = socket.remotePort ?? 0;
    this.label = this.peer.includes(':') ? `[${this.peer}]:${port}` : `${this.peer}:${port}`;
    this.log = host.log.child({ peer: this.label });
    this.requests = new Requests(host, {
      log: this.log, peer: this.peer,
      outBytes: () => this.socket.writableLength + (this.channel?.pendingOutBytes ?? 0),
      respond: (frame, status, data) => this.respond(frame, status, data),
      abort: (reason) => this.abort(reason),
      callDone: (idle) => this.callDone(idle),
    });
    this.out = new TurnWriter(socket);
    this.reading = new ReadGate(socket, userBuffer, () => this.decoder.pendingBytes);
    socket.setNoDelay(true);
    if (!userBuffer) socket.on('data', (chunk: Buffer) => this.onBytes(chunk, false));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => {
      this.closeReason ??= `socket error: ${errnoOf(err) ?? err.message}`;
      this.log.debug('socket error', { op: 'socket', errno: errnoOf(err), error: err.message });
    });
    socket.on('close', () => this.onClose());
    socket.on('drain', () => this.pump());
    this.helloTimer = host.clock.setTimer(host.limits.helloTimeoutMs, () => {
      this.helloTimer = null;
      if (this.phase === 'hello') this.abort(`no HELLO within ${host.limits.helloTimeoutMs} ms`);
      else if (this.phase === 'handshake' || this.phase === 'auth') {
        this.abort(`handshake (HELLO and AUTH) not done within ${host.limits.helloTimeoutMs} ms`);
      }
    });
  }

  /** Backend calls issued on this connection and not finished. */
  get inflightCalls(): number {
    return this.requests.inflight;
  }

  /** Not past the handshake yet (counted against max-handshakes-per-addr). */
  get handshaking(): boolean {
    return this.phase === 'hello' || this.phase === 'handshake' || this.phase === 'auth';
  }

  /** Resolves once no backend call issued on this connection is in flight. */
  drained(): Promise<void> {
    return this.requests.drained();
  }

  // ---- input ----

  /** Where the next socket read lands (user-buffer sockets): a payload being assembled, or scratch. */
  readTarget(scratch: Buffer): Buffer {
    return this.phase === 'hello' ? scratch : this.decoder.readTarget(scratch);
  }

  /** Bytes read; transient: `chunk` is overwritten once this returns (a reused read buffer). */
  onBytes(chunk: Buffer, transient: boolean): void {
    if (this.phase === 'closed' || this.phase === 'lingering') return; // fenced/aborted: not one more byte
    if (this.phase === 'hello' && !this.headerChecked) {
      // Check the first header before buffering a large payload from an unknown peer.
      this.preHeader = this.preHeader ? Buffer.concat([this.preHeader, chunk]) : (transient ? Buffer.from(chunk) : chunk);
      if (this.preHeader.length >= HEADER_SIZE) {
        const problem = firstHeaderProblem(this.preHeader.subarray(0, HEADER_SIZE));
        this.preHeader = null;
        this.headerChecked = true;
        if (problem !== null) return this.abort(problem);
      }
    }
    if (transient) this.decoder.feedTransient(chunk);
    else this.decoder.feed(chunk);
    this.pump();
    this.reading.afterRead();
  }

  private onEnd(): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'lingering') {
      this.socket.destroy();
      return;
    }
    if (!this.decoder.atBoundary) {
      this.log.warn('connection closed mid-frame', { op: 'frame', bytes: this.decoder.pendingBytes });
    }
    if (this.phase === 'hello' || this.phase === 'handshake' || this.phase === 'auth') {
      this.closeReason ??= 'peer closed during handshake';
      this.socket.destroy();
      this.phase = 'closed';
      return;
    }
    this.beginClose('peer closed');
  }

  /** Pull and handle frames while the connection may take them; then set the socket's reading. */
  private pump(): void {
    for (;;) {
      if (this.phase === 'serving') {
        this.requests.dispatchWaiting();
        if (this.phase !== 'serving') break;
        if (this.channel && this.channel.pendingIn >= MAX_PENDING_OPENS) break;
      } else if (this.phase !== 'hello' && this.phase !== 'auth') {
        break;
      }
      let frame: Frame | null;
      try {
        frame = this.decoder.next();
      } catch (err) {
        this.abort((err as Error).message);
        return;
      }
      if (!frame) break;
      this.onFrame(frame);
    }
    this.updateReading();
  }

  /** Read more only while what is in flight and what is being opened leave room. */
  private roomToRead(): boolean {
    const opening = this.channel ? this.channel.pendingInBytes : 0;
    return this.requests.canDispatch() && (this.channel === null || this.channel.pendingIn < MAX_PENDING_OPENS)
      && (opening === 0 || this.requests.committedBytes() + opening < MAX_BYTES_IN_FLIGHT);
  }

  private updateReading(): void {
    const read = this.phase === 'hello' || this.phase === 'auth' || this.phase === 'lingering'
      || (this.phase === 'serving' && !this.requests.hasWaiting && this.roomToRead());
    // paused, PINGs and the peer's close are still seen (ReadGate)
    if (read) this.reading.resume();
    else if (!this.reading.isPaused) this.reading.pause();
  }

  private onFrame(frame: Frame): void {
    if (this.channel) {
      // every frame after the handshake is opened (in order) before anything looks at it
      this.channel.receive(frame);
      return;
    }
    if (frame.tagLength !== 0) {
      this.abort(`bad frame: ${cmdName(frame.cmd)} carries a ${frame.tagLength}-byte tag during the handshake`);
      return;
    }
    if (this.phase === 'hello') {
      if (frame.cmd !== Cmd.HELLO) this.abort(`expected HELLO, got ${cmdName(frame.cmd)}`);
      else this.onHello(frame);
      return;
    }
    if (this.phase === 'auth') {
      if (frame.cmd !== Cmd.AUTH) this.abort(`expected AUTH, got ${cmdName(frame.cmd)}`);
      else this.onAuth(frame);
      return;
    }
    this.abort(`unexpected ${cmdName(frame.cmd)} frame before the handshake finished`);
  }

  /** An authenticated (opened) frame of a serving connection. */
  private onOpened(frame: Frame): void {
    if (this.phase !== 'serving') return; // closing: requests not started are dropped
    switch (frame.cmd) {
      case Cmd.PING:
        // answered at once, whatever the backend is doing
        this.send({ cmd: Cmd.PONG, id: frame.id });
        return;
      case Cmd.IO:
        this.requests.offer(frame);
        return;
      case Cmd.CLOSE:
        this.beginClose('client sent CLOSE');
        return;
      default:
        this.abort(`unexpected ${cmdName(frame.cmd)} frame`);
    }
  }

  // ---- handshake ----

  private onHello(frame: Frame): void {
    this.phase = 'handshake';
    let hello: Hello;
    try {
      hello = decodeHello(frame.payload);
    } catch (err) {
      this.abort((err as Error).message);
      return;
    }
    // the exact bytes as received: the first half of the transcript both AUTH proofs cover
    const helloBytes = Buffer.from(frame.payload);
    this.handshake(hello, helloBytes).catch((err) => {
      this.log.error('handshake failed', { op: 'hello', error: (err as Error).message });
      this.abort(`handshake failed: ${(err as Error).message}`);
    });
  }

  private stopHelloTimer(): void {
    this.helloTimer?.cancel();
    this.helloTimer = null;
  }

  private async handshake(hello: Hello, helloBytes: Buffer): Promise<void> {
    const from = { peer: this.peer, label: this.label, log: this.log, pending: () => this.phase === 'handshake' };
    const verdict = await decideHello(this.host, from, hello, helloBytes);
    switch (verdict.kind) {
      case 'gone':
        return;
      case 'refuse':
        if (verdict.auth) this.authRefuse(verdict.message);
        else this.refuse(verdict.errno, verdict.message);
        return;
      case 'admit':
        // nothing to prove: admit, then answer
        this.stopHelloTimer();
        if (!await this.admit(verdict.sessionId, verdict.granted, verdict.claim)) return;
        this.send({ cmd: Cmd.HELLO_REPLY, payload: verdict.reply(randomBytes(32)) });
        this.replied = true;
        this.startServing(verdict.suite, NO_KEYS, NO_KEYS);
        return;
      case 'auth':
        this.pendingAuth = verdict.pending;
        this.send({ cmd: Cmd.HELLO_REPLY, payload: verdict.reply });
        this.replied = true;
        this.phase = 'auth';
        this.pump();
    }
  }

  /** The client's AUTH: its key proof over the transcript. Nothing is taken over before it checks out. */
  private onAuth(frame: Frame): void {
    const pa = this.pendingAuth!;
    this.pendingAuth = null;
    this.phase = 'handshake';
    if (!clientProofOk(pa, frame)) {
      wipeKeys(pa.keys);
      return this.authRefuse(`authentication failed: the key proof of ${this.peer} does not match export ${this.host.name}'s key`
        + ` (suite ${pa.suite.name})`);
    }
    this.stopHelloTimer();
    this.finishAuth(pa).catch((err) => {
      wipeKeys(pa.keys);
      this.log.error('handshake failed', { op: 'auth', error: (err as Error).message });
      this.abort(`handshake failed: ${(err as Error).message}`);
    });
  }

  private async finishAuth(pa: PendingAuth): Promise<void> {
    if (!await this.admit(pa.sessionId, pa.granted, pa.claim)) {
      wipeKeys(pa.keys);
      return;
    }
    this.send({ cmd: Cmd.AUTH, payload: serverAuth(pa) });
    this.startServing(pa.suite, pa.keys.serverToClient, pa.keys.clientToServer);
  }

  /**
   * Take the mirror claim (durable before the handshake completes), then join the session
   * (session.ts: fencing first). Only an admitted (and, with a key, authenticated) HELLO may take
   * a mirror or a session over. false = the connection closed or was refused meanwhile.
   */
  private async admit(sessionId: Buffer, granted: number, claim: HeldClaim | null): Promise<boolean> {
    const host = this.host;
    if (claim !== null) {
      const taken = host.claims().take(claim);
      if ('refused' in taken) {
        this.refuse('EPERM', taken.refused); // overtaken while its key was loaded or its AUTH awaited
        return false;
      }
      try {
        await taken.saved;
      } catch (err) {
        this.log.error('cannot store the mirror claim', { op: 'claims', errno: errnoOf(err), error: (err as Error).message });
        this.refuse('EIO', `export ${host.name} cannot store the mirror claim (see its log)`);
        return false;
      }
      if (this.phase !== 'handshake') return false;
      this.requests.claim = claim;
    }
    const known = await host.sessions.admit(this, sessionId, host.clock, this.log, (s) => { this.requests.session = s; }, () => {
      if (this.phase !== 'handshake') return false; // closed while we waited
      if (host.serving()) return true;
      this.refuse('ESHUTDOWN', `node ${host.name} is not serving`);
      return false;
    });
    if (known === null) return false;
    if (known) host.stats.reconnected();
    this.requests.granted = granted;
    this.reconnected = known;
    return true;
  }

  private startServing(suite: Suite, tx: DirectionKeys, rx: DirectionKeys): void {
    const host = this.host;
    this.channel = new SealedChannel({
      suite, tx, rx,
      crypto: host.cryptoPool,
      write: (parts, written) => this.writeParts(parts, written),
      deliver: (frame) => this.onOpened(frame),
      fail: (reason) => this.abort(reason),
      onProgress: () => { if (this.phase === 'serving') this.pump(); },
    });
    this.phase = 'serving';
    this.announced = true;
    const session = this.requests.session!;
    this.log.info('session connected', {
      op: 'hello', session: session.hex, granted: accessName(this.requests.granted), suite: suite.name, reconnect: this.reconnected,
    });
    host.emit('connected', { sessionId: session.hex });
    this.pump();
  }

  /** Refuse the handshake: HELLO_REPLY (or AUTH, once HELLO_REPLY went out) with an error status and message, then close. */
  private refuse(errno: string, message: string): void {
    if (this.phase === 'closed' || this.phase === 'lingering') return;
    this.log.warn('HELLO refused', { op: 'hello', errno, reason: message });
    this.send({ cmd: this.replied ? Cmd.AUTH : Cmd.HELLO_REPLY, status: errnoNumber(errno), payload: encodeRefusal(message) });
    this.closeReason ??= `refused: ${message}`;
    this.linger();
  }

  /** Authentication failed: logged naming node and peer, event auth-failed {addr}, refused with EACCES. */
  private authRefuse(message: string): void {
    if (this.phase === 'closed' || this.phase === 'lingering') return;
    this.log.error(`${message} (node ${this.host.name}, client ${this.label})`, { op: 'auth', addr: this.peer });
    this.host.emit('auth-failed', { addr: this.peer });
    this.refuse('EACCES', message);
  }

  // ---- requests ----

  /** A backend call was answered; idle: none is left in flight. */
  private callDone(idle: boolean): void {
    if (idle) {
      if (this.phase === 'closing') this.linger();
      if (this.phase === 'closed') this.forgetFromSession();
    }
    if (this.phase === 'serving') this.pump();
  }

  private respond(frame: Frame, status: number, data: Buffer | null): void {
    if (this.phase !== 'serving' && this.phase !== 'closing') return;
    this.send({
      cmd: Cmd.IO_RESPONSE, op: frame.op, status, id: frame.id, offset: frame.offset, length: frame.length,
      payload: data,
    }, data === null ? undefined : () => releasePayload(data));
  }

  /** Send a frame: sealed once the handshake is done, plain before. done: the payload is no longer needed. */
  private send(init: FrameInit, done?: () => void): void {
    if (this.channel) this.channel.send(init, done);
    else this.writeParts(encodeFrame(init), done);
  }

  /** Frames go out in one writev per event-loop turn (TurnWriter). */
  private writeParts(parts: Buffer[], written?: () => void): void {
    const s = this.socket;
    if (s.destroyed || !s.writable) return;
    // A request waiting for room in MAX_BYTES_IN_FLIGHT may be waiting for these bytes to leave:
    // 'drain' only fires after a write that filled the socket's buffer, so look again here
    // (not after a failed write: the socket is going, nothing more is dispatched for it).
    this.out.write(parts, (err) => {
      written?.();
      if (!err && this.requests.hasWaiting) this.pump();
    });
  }

  // ---- closing ----

  /** No new requests; answer the in-flight ones, then end the connection. */
  beginClose(reason: string): void {
    if (this.phase === 'closed' || this.phase === 'lingering' || this.phase === 'closing') return;
    if (this.phase === 'hello' || this.phase === 'handshake' || this.phase === 'auth') {
      this.abort(reason);
      return;
    }
    this.closeReason ??= reason;
    this.phase = 'closing';
    const dropped = this.requests.dropWaiting();
    if (dropped > 0) this.log.debug('dropping requests not started', { op: 'close', count: dropped });
    this.updateReading();
    if (this.requests.inflight === 0) this.linger();
  }

  /** Send our FIN, discard input until the peer closes (no RST eats our last frames), bounded. */
  private linger(): void {
    if (this.phase === 'closed' || this.phase === 'lingering') return;
    this.phase = 'lingering';
    this.requests.dropWaiting();
    // responses still being sealed go out first, in order; then our FIN
    const end = (): void => { if (!this.socket.destroyed) this.socket.end(); };
    if (this.channel) this.channel.whenFlushed(end);
    else end();
    this.updateReading();
    this.lingerTimer = this.host.clock.setTimer(LINGER_MS, () => {
      this.lingerTimer = null;
      this.socket.destroy();
    });
  }

  /** Close at once, logging why (bad frame, protocol violation, timeout). */
  abort(reason: string): void {
    if (this.phase === 'closed') return;
    this.log.warn('closing connection', { op: 'frame', reason });
    this.closeReason ??= reason;
    this.destroyNow();
  }

  /** Fencing: destroy the socket without parsing another byte; in-flight calls still finish. */
  fence(reason: string): void {
    if (this.phase === 'closed') return;
    this.log.info('fenced', { op: 'fence', reason, inflight: this.requests.inflight });
    this.closeReason = reason;
    this.destroyNow();
  }

  /** Forced stop: destroy now. */
  destroy(reason: string): void {
    if (this.phase === 'closed') return;
    this.closeReason ??= reason;
    this.destroyNow();
  }

  private destroyNow(): void {
    this.out.flush();
    this.phase = 'closed';
    this.requests.dropWaiting();
    this.dropCrypto();
    this.helloTimer?.cancel();
    this.helloTimer = null;
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.closedHandled) return;
    this.closedHandled = true;
    this.phase = 'closed';
    this.requests.dropWaiting();
    this.dropCrypto();
    this.helloTimer?.cancel();
    this.lingerTimer?.cancel();
    this.helloTimer = this.lingerTimer = null;
    if (this.requests.inflight === 0) this.forgetFromSession();
    const session = this.requests.session;
    if (session) session.lastUsed = this.host.clock.now();
    const reason = this.closeReason ?? 'peer closed';
    if (this.announced) {
      this.log.info('session disconnected', { op: 'close', session: this.requests.session?.hex, reason });
      this.host.emit('disconnected', { reason });
    } else {
      this.log.debug('connection closed', { op: 'close', reason });
    }
    this.host.connectionClosed(this);
  }

  /** Forget the channel and any half-done handshake keys (wiped). */
  private dropCrypto(): void {
    this.channel?.close();
    if (this.pendingAuth) {
      wipeKeys(this.pendingAuth.keys);
      this.pendingAuth = null;
    }
  }

  private forgetFromSession(): void {
    const session = this.requests.session;
    if (session && this.closedHandled) this.host.sessions.leave(session, this, this.host.clock.now());
  }
}
