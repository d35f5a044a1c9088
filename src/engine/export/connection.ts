// One client connection of an export node: handshake (HELLO → ACL, suite, fencing) then the
// request loop (PING/PONG, IO → validate → dedup → backend → IO_RESPONSE).
//
// Reading is pull-style: socket chunks are fed to a FrameDecoder and frames are pulled while the
// connection may take them. At the per-connection in-flight cap (or when responses pile up
// unread) the socket is paused; frames already received are still pulled, so PINGs among them
// are answered at once, and IO frames wait in `waiting` until a backend call finishes.
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import { errnoNumber, errnoOf } from '../../util/errors.js';
import {
  Cmd, Flag, FrameDecoder, HEADER_SIZE, Op, WIRE_VERSION, cmdName, decodeHeader, decodeHello, encodeFrame,
  encodeHelloReply, encodeRefusal, opName, type Frame, type FrameInit, type Hello,
} from '../../protocol/wire.js';
import type { AclEntry, EventFields, EventName, ExportConfig, Limits } from '../types.js';
import type { Backend } from './backend.js';
import type { Session, SessionTable } from './dedup.js';
import { accessName, entryAccess, grantAccess } from './acl.js';
import { validateIo } from './validate.js';

/** Preferred/minimum block size announced in HELLO_REPLY (the backend is byte-granular). */
export const BLOCK_SIZE = 512;
/** A HELLO is small: refuse a first frame announcing more than this before anything is allocated. */
export const MAX_HELLO_PAYLOAD = 64 * 1024;
/** Stop reading while this many response bytes wait in the socket (client not reading). */
export const OUTPUT_HIGH_WATER = 16 * 1024 * 1024;
/** How long a refused or drained connection may linger after our FIN before it is destroyed. */
export const LINGER_MS = 2000;

export interface CallToken {
  readonly start: number;
}

/** What a connection needs from its export node. */
export interface ExportHost {
  readonly name: string;
  readonly log: Logger;
  readonly clock: Clock;
  readonly limits: Limits;
  /** false with DST_TEST_NO_FENCING=1: no fencing, no waiting, no dedup */
  readonly fencing: boolean;
  readonly sessions: SessionTable<Connection>;
  config(): ExportConfig;
  /** true while the node is listening (new HELLOs accepted) */
  serving(): boolean;
  size(): number;
  maxRequest(): number;
  identity(): Buffer;
  backend(): Backend;
  /** the canonical suite the node is configured for */
  suite(): string;
  /** the ACL entry governing `peer` in the CURRENT config */
  aclEntry(peer: string): AclEntry | null;
  beginCall(): CallToken;
  endCall(token: CallToken, op: Op, bytes: number, status: number): void;
  /** a request answered without reaching the backend (validation refusal, dedup hit) */
  answered(status: number): void;
  noteReplay(): void;
  noteReconnect(): void;
  emit(event: EventName, fields: EventFields): void;
  connectionClosed(conn: Connection): void;
  /** a backend call failed with this error (the node checks for a vanished disk) */
  backendFailed(err: unknown): void;
}

type Phase =
  | 'hello'      // waiting for HELLO
  | 'handshake'  // HELLO received: checks / fencing wait; nothing more is read
  | 'serving'
  | 'closing'    // no new requests; ends once in-flight calls answered
  | 'lingering'  // our FIN sent (refusal, drain); input discarded until the peer closes
  | 'closed';    // destroyed (or fenced): never parse another byte

let nextConnId = 1;
const ESHUTDOWN = errnoNumber('ESHUTDOWN');

export class Connection {
  readonly id = nextConnId++;
  /** peer address, IPv4-mapped normalised by the ACL code */
  readonly peer: string;
  /** "ip:port" of the peer, for logs */
  readonly label: string;
  private phase: Phase = 'hello';
  private readonly decoder = new FrameDecoder();
  private headerChecked = false;
  private preHeader: Buffer | null = null;
  private helloTimer: TimerHandle | null = null;
  private lingerTimer: TimerHandle | null = null;
  private session: Session<Connection> | null = null;
  private granted = 0;
  private inflight = 0;
  private waiting: Frame[] = [];
  private drainWaiters: (() => void)[] = [];
  private closeReason: string | null = null;
  private announced = false;
  private closedHandled = false;
  private readonly log: Logger;

  constructor(private readonly host: ExportHost, readonly socket: Socket) {
    this.peer = socket.remoteAddress ?? 'unknown';
    const port = socket.remotePort ?? 0;
    this.label = this.peer.includes(':') ? `[${this.peer}]:${port}` : `${this.peer}:${port}`;
    this.log = host.log.child({ peer: this.label });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
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
    });
  }

  /** Backend calls issued on this connection and not finished. */
  get inflightCalls(): number {
    return this.inflight;
  }

  get isClosed(): boolean {
    return this.phase === 'closed';
  }

  /** Resolves once no backend call issued on this connection is in flight. */
  drained(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  // ---- input ----

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed' || this.phase === 'lingering') return; // fenced/aborted: not one more byte
    if (this.phase === 'hello' && !this.headerChecked) {
      // Check the first header before buffering a large payload from an unknown peer.
      this.preHeader = this.preHeader ? Buffer.concat([this.preHeader, chunk]) : chunk;
      if (this.preHeader.length >= HEADER_SIZE) {
        const head = this.preHeader.subarray(0, HEADER_SIZE);
        this.preHeader = null;
        this.headerChecked = true;
        try {
          const h = decodeHeader(head, MAX_HELLO_PAYLOAD);
          if (h.cmd !== Cmd.HELLO) return this.abort(`expected HELLO, got ${cmdName(h.cmd)}`);
        } catch (err) {
          return this.abort((err as Error).message);
        }
      }
    }
    this.decoder.feed(chunk);
    this.pump();
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
    if (this.phase === 'hello' || this.phase === 'handshake') {
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
        while (this.waiting.length > 0 && this.canDispatch()) this.dispatch(this.waiting.shift()!);
        if (this.phase !== 'serving') break;
      } else if (this.phase !== 'hello') {
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

  private canDispatch(): boolean {
    return this.inflight < this.host.limits.maxInflightPerConnection && this.socket.writableLength < OUTPUT_HIGH_WATER;
  }

  private updateReading(): void {
    const read = this.phase === 'hello' || this.phase === 'lingering'
      || (this.phase === 'serving' && this.waiting.length === 0 && this.canDispatch());
    if (read) {
      if (this.socket.isPaused()) this.socket.resume();
    } else if (!this.socket.isPaused()) {
      this.socket.pause();
    }
  }

  private onFrame(frame: Frame): void {
    if (frame.tagLength !== 0) {
      this.abort(`bad frame: ${cmdName(frame.cmd)} carries a ${frame.tagLength}-byte tag on an unsealed connection`);
      return;
    }
    if (this.phase === 'hello') {
      if (frame.cmd !== Cmd.HELLO) this.abort(`expected HELLO, got ${cmdName(frame.cmd)}`);
      else this.onHello(frame);
      return;
    }
    switch (frame.cmd) {
      case Cmd.PING:
        // answered at once, whatever the backend is doing
        this.send({ cmd: Cmd.PONG, id: frame.id });
        return;
      case Cmd.IO:
        if (this.waiting.length === 0 && this.canDispatch()) this.dispatch(frame);
        else this.waiting.push(frame);
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
    this.helloTimer?.cancel();
    this.helloTimer = null;
    let hello: Hello;
    try {
      hello = decodeHello(frame.payload);
    } catch (err) {
      this.abort((err as Error).message);
      return;
    }
    this.handshake(hello).catch((err) => {
      this.log.error('handshake failed', { op: 'hello', error: (err as Error).message });
      this.abort(`handshake failed: ${(err as Error).message}`);
    });
  }

  private async handshake(hello: Hello): Promise<void> {
    const host = this.host;
    const cfg = host.config();
    const node = host.name;
    if (!host.serving()) return this.refuse('ESHUTDOWN', `node ${node} is not serving`);
    if (hello.version !== WIRE_VERSION) {
      return this.refuse('EPROTO', `protocol version ${hello.version} is not supported by node ${node} (it speaks ${WIRE_VERSION})`);
    }
    if (hello.exportName !== '' && hello.exportName !== node) {
      return this.refuse('ENOENT', `no export ${JSON.stringify(hello.exportName)} here: node ${node} serves "" and "${node}"`);
    }
    const entry = host.aclEntry(this.peer);
    if (!entry || entry.perm === 'none') {
      host.emit('acl-denied', { addr: this.peer });
      return this.refuse('EACCES', `address ${this.peer} is not allowed by node ${node}`);
    }
    const suite = host.suite();
    if (hello.suite !== suite) {
      return this.refuse('EPROTO', `suite mismatch: the client offers ${hello.suite}, node ${node} uses ${suite}`);
    }
    if (suite !== 'none') {
      return this.refuse('EPROTONOSUPPORT', `suite ${suite} is not implemented by this export yet`);
    }
    const granted = grantAccess(hello.access, entry, cfg.readonly);
    if (granted === 0) {
      return this.refuse('EACCES', `address ${this.peer} may not ${accessName(hello.access)} on node ${node}`
        + ` (allowed: ${accessName(entryAccess(entry, cfg.readonly))})`);
    }

    // Fencing: only an admitted HELLO may take a session over.
    const { session, known } = host.sessions.obtain(hello.sessionId, host.clock.now());
    const others = [...session.connections].filter((c) => c !== this);
    // Join the session before waiting, so a third HELLO of the same session fences this one too.
    this.session = session;
    session.connections.add(this);
    if (host.fencing && others.length > 0) {
      for (const old of others) old.fence(`fenced by a new connection of the same session from ${this.label}`);
      const busy = others.filter((c) => c.inflightCalls > 0);
      if (busy.length > 0) {
        this.log.info('waiting for the old connection\'s backend calls', {
          op: 'fence', session: session.hex, calls: busy.reduce((n, c) => n + c.inflightCalls, 0),
        });
        await Promise.all(busy.map((c) => c.drained()));
      }
      if (this.phase !== 'handshake') return; // closed while we waited
      if (!host.serving()) return this.refuse('ESHUTDOWN', `node ${node} is not serving`);
    }
    if (known) host.noteReconnect();
    this.granted = granted;
    session.hellos++;
    session.lastUsed = host.clock.now();

    this.send({
      cmd: Cmd.HELLO_REPLY,
      payload: encodeHelloReply({
        identity: host.identity(),
        size: host.size(),
        blockSize: BLOCK_SIZE,
        maxRequest: host.maxRequest(),
        granted,
        suite,
        nonce: randomBytes(32),
        message: null,
      }),
    });
    this.phase = 'serving';
    this.announced = true;
    this.log.info('session connected', { op: 'hello', session: session.hex, granted: accessName(granted), reconnect: known });
    host.emit('connected', { sessionId: session.hex });
    this.pump();
  }

  /** HELLO_REPLY with an error status and message, then close. */
  private refuse(errno: string, message: string): void {
    if (this.phase === 'closed') return;
    this.log.warn('HELLO refused', { op: 'hello', errno, reason: message });
    this.send({ cmd: Cmd.HELLO_REPLY, status: errnoNumber(errno), payload: encodeRefusal(message) });
    this.closeReason ??= `refused: ${message}`;
    this.linger();
  }

  // ---- requests ----

  private dispatch(frame: Frame): void {
    const host = this.host;
    const op = frame.op as Op;
    const access = this.granted & entryAccess(host.aclEntry(this.peer), host.config().readonly);
    const verdict = validateIo(frame, { size: host.size(), maxRequest: host.maxRequest(), access });
    if (!verdict.ok) {
      if (verdict.close) {
        this.abort(verdict.reason);
        return;
      }
      this.log.info('request refused', {
        op: opName(op), id: frame.id, offset: frame.offset, length: frame.length, errno: verdict.errno, reason: verdict.reason,
      });
      const status = errnoNumber(verdict.errno);
      host.answered(status);
      this.respond(frame, status, null);
      return;
    }
    const replay = (frame.flags & Flag.REPLAY) !== 0;
    if (replay) host.noteReplay();
    const dedup = host.fencing && this.session ? this.session.dedup : null;
    if (dedup) {
      if (replay && op !== Op.READ) {
        const recorded = dedup.lookup(frame.id);
        if (recorded !== undefined) {
          this.log.debug('replay answered from record', { op: opName(op), id: frame.id, status: recorded });
          host.answered(recorded);
          this.respond(frame, recorded, null);
          return;
        }
      }
      dedup.prune(frame.ackedBelow);
    }
    this.inflight++;
    const token = host.beginCall();
    this.run(frame).then(
      (data) => this.finish(frame, token, 0, data),
      (err) => {
        const errno = errnoOf(err) ?? 'EIO';
        // the real errno, before anything maps it
        this.log.warn(`${opName(op)} failed`, {
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
      case Op.TRIM: return b.trim(frame.offset, frame.length).then(() => null);
      case Op.WRITE_ZEROES: return b.writeZeroes(frame.offset, frame.length, fua).then(() => null);
      default: return Promise.reject(Object.assign(new Error('EINVAL: unknown op'), { code: 'EINVAL' }));
    }
  }

  private finish(frame: Frame, token: CallToken, status: number, data: Buffer | null): void {
    const op = frame.op as Op;
    const bytes = status === 0 && (op === Op.READ || op === Op.WRITE) ? frame.length : 0;
    this.host.endCall(token, op, bytes, status);
    // Record before the drain waiters run: a fenced session's successor must see it. ESHUTDOWN
    // means the call never ran (node stopping, hold cancelled): a replay must run it.
    if (op !== Op.READ && this.host.fencing && this.session && status !== ESHUTDOWN) {
      this.session.dedup.record(frame.id, status);
    }
    this.inflight--;
    this.respond(frame, status, status === 0 ? data : null);
    if (this.inflight === 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
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
    });
  }

  private send(init: FrameInit): void {
    const s = this.socket;
    if (s.destroyed || !s.writable) return;
    const parts = encodeFrame(init);
    if (parts.length === 1) {
      s.write(parts[0]!);
      return;
    }
    s.cork();
    for (const p of parts) s.write(p);
    s.uncork();
  }

  // ---- closing ----

  /** No new requests; answer the in-flight ones, then end the connection. */
  beginClose(reason: string): void {
    if (this.phase === 'closed' || this.phase === 'lingering' || this.phase === 'closing') return;
    if (this.phase === 'hello' || this.phase === 'handshake') {
      this.abort(reason);
      return;
    }
    this.closeReason ??= reason;
    this.phase = 'closing';
    if (this.waiting.length > 0) {
      this.log.debug('dropping requests not started', { op: 'close', count: this.waiting.length });
      this.waiting = [];
    }
    this.updateReading();
    if (this.inflight === 0) this.linger();
  }

  /** Send our FIN, discard input until the peer closes (no RST eats our last frames), bounded. */
  private linger(): void {
    if (this.phase === 'closed' || this.phase === 'lingering') return;
    this.phase = 'lingering';
    this.waiting = [];
    this.socket.end();
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
    this.log.info('fenced', { op: 'fence', reason, inflight: this.inflight });
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
    this.phase = 'closed';
    this.waiting = [];
    this.helloTimer?.cancel();
    this.helloTimer = null;
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.closedHandled) return;
    this.closedHandled = true;
    this.phase = 'closed';
    this.waiting = [];
    this.helloTimer?.cancel();
    this.lingerTimer?.cancel();
    this.helloTimer = this.lingerTimer = null;
    if (this.inflight === 0) this.forgetFromSession();
    if (this.session) this.session.lastUsed = this.host.clock.now();
    const reason = this.closeReason ?? 'peer closed';
    if (this.announced) {
      this.log.info('session disconnected', { op: 'close', session: this.session?.hex, reason });
      this.host.emit('disconnected', { reason });
    } else {
      this.log.debug('connection closed', { op: 'close', reason });
    }
    this.host.connectionClosed(this);
  }

  private forgetFromSession(): void {
    if (this.session && this.closedHandled) {
      this.session.connections.delete(this);
      this.session.lastUsed = this.host.clock.now();
    }
  }
}

/** Refuse a connection before any HELLO (connection cap): a HELLO_REPLY refusal, then close. */
export function refuseSocket(socket: Socket, errno: string, message: string, clock: Clock): void {
  socket.on('error', () => {});
  socket.on('data', () => {}); // discard
  socket.on('end', () => socket.destroy());
  for (const p of encodeFrame({ cmd: Cmd.HELLO_REPLY, status: errnoNumber(errno), payload: encodeRefusal(message) })) socket.write(p);
  socket.end();
  const t = clock.setTimer(LINGER_MS, () => socket.destroy());
  socket.on('close', () => t.cancel());
}
