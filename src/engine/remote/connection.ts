// One TCP connection from a remote node to its export (DESIGN §7, §8).
//
// A declared state table (libnbd style, reference/style.md §2): the states are data, every change
// goes through transition(), and an illegal one throws. The connection moves bytes and watches the
// link's liveness; it holds no retry policy (the node reconnects, the table replays).
//
// Liveness, not per-request timers: lastByteAt is refreshed by ANY byte received. With work
// outstanding, a PING goes out after min(ping-interval, resend-timeout/3) of silence and the link
// is dead after resend-timeout of silence; when idle, a PING after ping-interval of silence and
// dead after 3 unanswered pings. A slow export that still answers PINGs is never declared dead.
// One liveness timer per connection, from the injected Clock.
//
// Handshake (DESIGN §7, §9), frames in order; the whole of it bounded by resend-timeout:
//   (key files read fresh: the input key = cipher key ‖ hash key, as configured now)
//   HELLO          version, export name, session id, rw access, our suite, key id (when keyed), nonce
//   HELLO_REPLY    refused (status): EACCES → denied (auth-failed when the message says
//                  "authentication failed"), EPROTO → suite-mismatch, else link. Another suite than
//                  ours → suite-mismatch. Suites without a key (none, none+<h>): READY.
//   AUTH (ours)    HMAC(confirm, "client" ‖ HELLO payload ‖ HELLO_REPLY payload), both as sent/received
//   AUTH (theirs)  refused (status EACCES) → auth-failed; else its proof HMAC(confirm, "server" ‖
//                  transcript) must match (mutual authentication), else auth-failed; then READY.
// Once READY every frame both ways goes through a SealedChannel (sequence numbers from 0, header
// authenticated, large frames in the crypto pool, written and delivered in order); a frame that
// fails to open closes the link (reason link) and the table replays on the next connection,
// which makes a fresh handshake: new nonces, new keys, sequences from 0.
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import type { Clock, TimerHandle } from '../../util/clock.js';
import { DstError, errnoName } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { PEER_MESSAGE_MAX, peerText } from '../../util/escape.js';
import {
  Access, Cmd, FrameDecoder, Op, WIRE_VERSION, cmdName, decodeAuth, decodeHelloReply, decodeRefusal, encodeAuth, encodeFrame,
  encodeHello, type Frame, type FrameInit, type HelloReply,
} from '../../protocol/wire.js';
import { MAX_PAYLOAD } from '../../protocol/wire-header.js';
import { payloadPool } from '../io/payload-pool.js';
import {
  authProof, deriveSessionKeys, keyId, proofsEqual, type DirectionKeys, type SessionKeys, type Suite,
} from '../../protocol/suites.js';
import { DEFAULT_CRYPTO, type CryptoConfig, type Policy } from '../types.js';
import { NO_KEYS, SealedChannel, type FrameCrypto } from '../channel.js';
import { configSuite, loadNodeKey } from '../keys.js';
import type { BlockOp } from './target.js';
import type { Txn, TxnSender } from './transactions.js';

/** Connection states. */
export enum ConnState {
  /** Created; nothing sent, no socket yet. */
  IDLE = 'idle',
  /** TCP connect in progress; bounded by resend-timeout. */
  CONNECTING = 'connecting',
  /** TCP up and HELLO written; awaiting HELLO_REPLY, bounded by resend-timeout. */
  HELLO_SENT = 'hello-sent',
  /** Keyed suite: our AUTH written; awaiting the export's AUTH (same bound). */
  AUTH_SENT = 'auth-sent',
  /** Handshake done: IO frames flow, liveness (PING/PONG) is watched. */
  READY = 'ready',
  /** Terminal: socket destroyed or ended, timers cancelled, onClose reported once. */
  CLOSED = 'closed',
}

/** What moves a connection from one state to the next. */
export type ConnEvent =
  | 'start'     // begin the TCP connect
  | 'tcp-up'    // TCP connected, HELLO written
  | 'hello-ok'  // an acceptable HELLO_REPLY arrived (suite without a key: done)
  | 'auth-sent' // an acceptable HELLO_REPLY arrived for a keyed suite; our AUTH written
  | 'auth-ok'   // the export's AUTH proved its key
  | 'fail'      // error: socket error/close, timeout, refusal, bad frame, dead link
  | 'close';    // local decision to close (node stop, reconnect request)

const TRANSITIONS: Readonly<Record<ConnState, Partial<Record<ConnEvent, ConnState>>>> = {
  [ConnState.IDLE]: { start: ConnState.CONNECTING, close: ConnState.CLOSED },
  [ConnState.CONNECTING]: { 'tcp-up': ConnState.HELLO_SENT, fail: ConnState.CLOSED, close: ConnState.CLOSED },
  [ConnState.HELLO_SENT]: {
    'hello-ok': ConnState.READY, 'auth-sent': ConnState.AUTH_SENT, fail: ConnState.CLOSED, close: ConnState.CLOSED,
  },
  [ConnState.AUTH_SENT]: { 'auth-ok': ConnState.READY, fail: ConnState.CLOSED, close: ConnState.CLOSED },
  [ConnState.READY]: { fail: ConnState.CLOSED, close: ConnState.CLOSED },
  [ConnState.CLOSED]: {},
};

/** The next state for `event` in `from`; throws DST_ERR_INTERNAL for an illegal transition. */
export function transition(from: ConnState, event: ConnEvent): ConnState {
  const to = TRANSITIONS[from][event];
  if (to === undefined) {
    throw new DstError('DST_ERR_INTERNAL', `connection: illegal transition from ${from} on ${event}`);
  }
  return to;
}

/** Why a connection closed; the node maps it to its backoff reason. */
export type ConnCloseReason = 'link' | 'denied' | 'suite-mismatch' | 'auth-failed' | 'closed';

export interface ConnCloseInfo {
  reason: ConnCloseReason;
  /** human-readable cause, logged by the node */
  detail: string;
  /** errno behind it when there is one (ECONNREFUSED, ETIMEDOUT, EACCES, ...) */
  errno: string | null;
  /** the handshake had completed */
  wasReady: boolean;
}

/** The part of net.Socket a connection uses (tests pass an in-memory fake). */
export interface WireSocket {
  on(event: string, listener: (...args: any[]) => void): unknown;
  write(chunk: Buffer, written?: (err?: Error | null) => void): boolean;
  cork(): void;
  uncork(): void;
  end(): void;
  destroy(): void;
  setNoDelay(noDelay?: boolean): unknown;
}

export type SocketFactory = (host: string, port: number) => WireSocket;

export const defaultSocketFactory: SocketFactory = (host, port) => {
  const s = netConnect({ host, port });
  s.setNoDelay(true);
  return s;
};

/** Map a refusal status (errno number in HELLO_REPLY or AUTH) and its message to a close reason. */
export function refusalReason(status: number, message = ''): ConnCloseReason {
  const name = errnoName(status);
  if (name === 'EACCES') return message.startsWith('authentication failed') ? 'auth-failed' : 'denied';
  if (name === 'EPROTO') return 'suite-mismatch';
  return 'link';
}

/** Missed pongs after which an idle link is dead. */
export const IDLE_MISSED_PONGS = 3;

export const WIRE_OP: Readonly<Record<BlockOp, Op>> = {
  'read': Op.READ,
  'write': Op.WRITE,
  'flush': Op.FLUSH,
  'trim': Op.TRIM,
  'write-zeroes': Op.WRITE_ZEROES,
};

export interface ConnectionOptions {
  host: string;
  port: number;
  clock: Clock;
  log: Logger;
  /** read at every use: a policy change applies at once (call policyChanged()) */
  policy: () => Policy;
  /** export name ("" = default) and the node's session id (16 bytes, kept across reconnects) */
  exportName: string;
  sessionId: Buffer;
  /** true while transactions sent on this connection await replies */
  outstanding: () => boolean;
  onReady: (reply: HelloReply) => void;
  onResponse: (frame: Frame) => void;
  onClose: (info: ConnCloseInfo) => void;
  socketFactory?: SocketFactory;
  /** the node's crypto config, read at each handshake (default: none) */
  crypto?: () => CryptoConfig;
  /** the engine's crypto pool (large frames); null/absent = everything on this thread */
  cryptoPool?: FrameCrypto | null;
  /** reads the input key (default: loadNodeKey, the key files as configured) */
  loadKey?: (c: CryptoConfig, suite: Suite, log: Logger) => Promise<Buffer | null>;
}

export class Connection implements TxnSender {
  private st: ConnState = ConnState.IDLE;
  private socket: WireSocket | null = null;
  private readonly decoder = new FrameDecoder(MAX_PAYLOAD, payloadPool);
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);
  private handshakeTimer: TimerHandle | null = null;
  private livenessTimer: TimerHandle | null = null;
  private livenessAt = Infinity;
  private corked = false;

  /** the suite of this handshake (from the config at start) and its input key until derived */
  private suite: Suite | null = null;
  private inputKey: Buffer | null = null;
  /** the HELLO payload as sent, then HELLO ‖ HELLO_REPLY (the transcript) */
  private transcript: Buffer | null = null;
  private clientNonce: Buffer | null = null;
  private sessionKeys: SessionKeys | null = null;
  /** once READY: every frame both ways */
  private channel: SealedChannel | null = null;

  /** clock.now() of the last byte received (any frame, any part) */
  lastByteAt = 0;
  /** clock.now() of the last PING sent */
  private lastPingAt = -Infinity;
  /** PINGs sent since the last byte received */
  private unanswered = 0;
  private pingSeq = 0;
  /** work was outstanding at the last check, and since when */
  private busy = false;
  private busySince = 0;

  /** HELLO_REPLY once READY */
  reply: HelloReply | null = null;
  /** counters for tests and debug logs */
  pingsSent = 0;

  constructor(private readonly opts: ConnectionOptions) {}

  get state(): ConnState {
    return this.st;
  }

  private go(event: ConnEvent): void {
    const from = this.st;
    this.st = transition(from, event);
    this.opts.log.debug(`connection ${from} → ${this.st} (${event})`, { op: 'connection' });
  }

  /** Begin: TCP connect (bounded by resend-timeout), then HELLO. */
  start(): void {
    this.go('start');
    const rt = this.opts.policy().resendTimeoutMs;
    this.handshakeTimer = this.opts.clock.setTimer(rt, () => {
      this.handshakeTimer = null;
      this.fail('link', `connect to ${this.opts.host}:${this.opts.port} timed out after ${rt} ms`, 'ETIMEDOUT');
    });
    const crypto = this.opts.crypto?.() ?? DEFAULT_CRYPTO;
    try {
      this.suite = configSuite(crypto);
    } catch (err) {
      const detail = `authentication failed: ${(err as Error).message}`;
      queueMicrotask(() => this.fail('auth-failed', detail, null));
      return;
    }
    if (!this.suite.needsKey) {
      this.openSocket();
      return;
    }
    // key files are read fresh at every handshake: `crypto set` applies at the next one
    (this.opts.loadKey ?? loadNodeKey)(crypto, this.suite, this.opts.log).then(
      (key) => {
        if (this.st !== ConnState.CONNECTING || this.socket) {
          key?.fill(0);
          return;
        }
        this.inputKey = key;
        this.openSocket();
      },
      (err) => this.fail('auth-failed', `authentication failed: cannot load this node's key: ${(err as Error)?.message ?? String(err)}`,
        (err as { errno?: string | null }).errno ?? null),
    );
  }

  private openSocket(): void {
    let sock: WireSocket;
    try {
      if (this.opts.socketFactory) {
        sock = this.opts.socketFactory(this.opts.host, this.opts.port);
      } else {
        // Reads land in one reused scratch buffer, or straight into the payload being assembled:
        // no 64 KiB allocation per read (GC), large payloads copied once (by the kernel).
        const s = netConnect({ host: this.opts.host, port: this.opts.port, onread: {
          buffer: () => this.decoder.readTarget(this.scratch),
          callback: (n: number, buf: Uint8Array) => { this.onData(buf.subarray(0, n) as Buffer, true); return true; },
        } });
        s.setNoDelay(true);
        sock = s;
      }
    } catch (err) {
      // report asynchronously like a socket error would be
      queueMicrotask(() => this.fail('link', `connect: ${(err as Error).message}`, codeOf(err)));
      return;
    }
    this.socket = sock;
    sock.on('connect', () => this.onConnect());
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (err: Error) => this.fail('link', `${this.phase()}: ${err.message}`, codeOf(err)));
    sock.on('close', () => this.fail('link', `${this.phase()}: connection closed by the export`, 'ECONNRESET'));
  }

  private phase(): string {
    return this.st === ConnState.CONNECTING ? `connect to ${this.opts.host}:${this.opts.port}`
      : this.st === ConnState.HELLO_SENT || this.st === ConnState.AUTH_SENT ? 'handshake' : 'link';
  }

  private onConnect(): void {
    if (this.st !== ConnState.CONNECTING) return;
    this.go('tcp-up');
    this.lastByteAt = this.opts.clock.now();
    this.socket!.setNoDelay(true);
    this.clientNonce = randomBytes(32);
    const hello = encodeHello({
      version: WIRE_VERSION,
      exportName: this.opts.exportName,
      sessionId: this.opts.sessionId,
      access: Access.READ | Access.WRITE,
      suite: this.suite!.name,
      keyId: this.inputKey ? keyId(this.inputKey) : null,
      nonce: this.clientNonce,
    });
    this.transcript = hello;
    this.write(encodeFrame({ cmd: Cmd.HELLO, payload: hello }));
    this.handshakeTimer?.cancel();
    const rt = this.opts.policy().resendTimeoutMs;
    this.handshakeTimer = this.opts.clock.setTimer(rt, () => {
      this.handshakeTimer = null;
      this.fail('link', this.st === ConnState.AUTH_SENT ? `no AUTH from the export within ${rt} ms of the HELLO`
        : `no HELLO_REPLY within ${rt} ms`, 'ETIMEDOUT');
    });
  }

  private onData(chunk: Buffer, transient = false): void {
    if (this.st === ConnState.CLOSED) return;
    this.lastByteAt = this.opts.clock.now();
    this.unanswered = 0;
    if (transient) this.decoder.feedTransient(chunk);
    else this.decoder.feed(chunk);
    while (this.st === ConnState.HELLO_SENT || this.st === ConnState.AUTH_SENT || this.st === ConnState.READY) {
      let frame: Frame | null;
      try {
        frame = this.decoder.next();
      } catch (err) {
        this.fail('link', (err as Error).message, 'EPROTO');
        return;
      }
      if (!frame) return;
      if (this.channel) {
        this.channel.receive(frame); // opened in order; delivered to onReadyFrame once authenticated
        continue;
      }
      if (frame.tagLength !== 0) {
        this.fail('link', `bad frame: ${cmdName(frame.cmd)} carries a tag during the handshake`, 'EPROTO');
        return;
      }
      if (this.st === ConnState.HELLO_SENT) this.onHandshakeFrame(frame);
      else if (this.st === ConnState.AUTH_SENT) this.onAuthFrame(frame);
    }
  }

  /**
   * A handshake frame is the expected command and not a refusal; otherwise the connection fails
   * (naming what came, or the export's refusal of `what`) and this returns false.
   */
  private handshakeAccepted(frame: Frame, expected: Cmd, what: string): boolean {
    if (frame.cmd !== expected) {
      this.fail('link', `handshake: expected ${cmdName(expected)}, got ${cmdName(frame.cmd)}`, 'EPROTO');
      return false;
    }
    if (frame.status === 0) return true;
    let message = 'refused';
    try {
      message = peerText(decodeRefusal(frame.payload), PEER_MESSAGE_MAX);
    } catch { /* keep "refused" */ }
    const errno = errnoName(frame.status);
    this.fail(refusalReason(frame.status, message), `export refused ${what}: ${message} (${errno})`, errno);
    return false;
  }

  private onHandshakeFrame(frame: Frame): void {
    if (!this.handshakeAccepted(frame, Cmd.HELLO_REPLY, 'the HELLO')) return;
    let reply: HelloReply;
    try {
      reply = decodeHelloReply(frame.payload);
    } catch (err) {
      this.fail('link', (err as Error).message, 'EPROTO');
      return;
    }
    const suite = this.suite!;
    if (reply.suite !== suite.name) {
      this.fail('suite-mismatch', `suite mismatch: this node uses ${suite.name}, the export answered "${peerText(reply.suite)}"`, 'EPROTO');
      return;
    }
    this.reply = reply;
    if (!suite.needsKey || !this.inputKey) {
      this.transcript = null;
      this.go('hello-ok');
      this.becomeReady(NO_KEYS, NO_KEYS);
      return;
    }
    const keys = deriveSessionKeys(suite, this.inputKey, this.clientNonce!, reply.nonce);
    this.inputKey.fill(0);
    this.inputKey = null;
    this.sessionKeys = keys;
    this.transcript = Buffer.concat([this.transcript!, frame.payload]);
    this.write(encodeFrame({ cmd: Cmd.AUTH, payload: encodeAuth({ proof: authProof(keys.confirm, 'client', this.transcript) }) }));
    this.go('auth-sent');
  }

  /** The export's AUTH: a refusal of our proof, or its own proof (mutual authentication). */
  private onAuthFrame(frame: Frame): void {
    if (!this.handshakeAccepted(frame, Cmd.AUTH, 'the handshake')) return;
    const keys = this.sessionKeys!;
    let proof: Buffer | null = null;
    try {
      proof = decodeAuth(frame.payload).proof;
    } catch { /* a malformed AUTH proves nothing */ }
    if (!proof || !proofsEqual(proof, authProof(keys.confirm, 'server', this.transcript!))) {
      this.fail('auth-failed', 'authentication failed: the export did not prove the same key (its AUTH does not match)', 'EACCES');
      return;
    }
    keys.confirm.fill(0);
    this.sessionKeys = null;
    this.transcript = null;
    this.go('auth-ok');
    this.becomeReady(keys.clientToServer, keys.serverToClient);
  }

  private becomeReady(tx: DirectionKeys, rx: DirectionKeys): void {
    this.handshakeTimer?.cancel();
    this.handshakeTimer = null;
    this.channel = new SealedChannel({
      suite: this.suite!, tx, rx,
      crypto: this.opts.cryptoPool ?? null,
      write: (parts, written) => this.write(parts, written),
      deliver: (f) => this.onReadyFrame(f),
      fail: (reason) => this.fail('link', reason, 'EBADMSG'),
    });
    this.busy = this.opts.outstanding();
    this.busySince = this.opts.clock.now();
    this.armLiveness();
    this.opts.onReady(this.reply!);
  }

  private onReadyFrame(frame: Frame): void {
    switch (frame.cmd) {
      case Cmd.IO_RESPONSE:
        this.opts.onResponse(frame);
        return;
      case Cmd.PING:
        this.send({ cmd: Cmd.PONG, id: frame.id });
        return;
      case Cmd.PONG:
        return; // lastByteAt already refreshed
      case Cmd.CLOSE:
        this.fail('link', 'the export closed the connection', 'ECONNRESET');
        return;
      default:
        this.fail('link', `unexpected ${cmdName(frame.cmd)} on a ready connection`, 'EPROTO');
    }
  }

  // ---- sending ----

  /** One frame on a READY connection: sealed, numbered, written in order. */
  private send(init: FrameInit): void {
    this.channel?.send(init);
  }

  /** One writev per event-loop turn: cork now, uncork on the next tick. written: the socket wrote the last part. */
  private write(parts: Buffer[], written?: () => void): void {
    const s = this.socket;
    if (!s || this.st === ConnState.CLOSED) return;
    if (!this.corked) {
      this.corked = true;
      s.cork();
      process.nextTick(() => {
        this.corked = false;
        s.uncork();
      });
    }
    const last = parts.length - 1;
    for (let i = 0; i < last; i++) s.write(parts[i]!);
    s.write(parts[last]!, written);
  }

  /** TxnSender: write one IO frame (the table decided flags and ackedBelow). */
  sendTxn(txn: Readonly<Txn>, flags: number, ackedBelow: number): void {
    if (this.st !== ConnState.READY) {
      throw new DstError('DST_ERR_INTERNAL', `connection: sendTxn in state ${this.st}`);
    }
    this.send({
      cmd: Cmd.IO,
      op: WIRE_OP[txn.op],
      flags,
      id: txn.id,
      offset: txn.offset,
      length: txn.length,
      ackedBelow,
      payload: txn.op === 'write' ? txn.payload : null,
    });
    if (!this.busy) {
      this.busy = true;
      this.busySince = this.opts.clock.now();
      this.armLiveness();
    }
  }

  // ---- liveness ----

  /** Re-evaluate the liveness timer after a policy change. */
  policyChanged(): void {
    if (this.st !== ConnState.READY) return;
    this.livenessTimer?.cancel();
    this.livenessTimer = null;
    this.livenessAt = Infinity;
    this.armLiveness();
  }

  /** The silence window before a PING: shorter while work is outstanding (whole ms). */
  private pingWindow(p: Policy, busy: boolean): number {
    return Math.max(1, Math.floor(busy ? Math.min(p.pingIntervalMs, p.resendTimeoutMs / 3) : p.pingIntervalMs));
  }

  /**
   * When the next PING is due and when the link is dead. Used both to arm the timer and to act
   * when it fires, so the two always agree (no float drift between them).
   */
  private dues(p: Policy): { pingAt: number; deadAt: number } {
    const pingAt = Math.max(this.lastByteAt, this.lastPingAt) + this.pingWindow(p, this.busy);
    let deadAt = Infinity;
    if (this.busy) deadAt = Math.max(this.lastByteAt, this.busySince) + p.resendTimeoutMs;
    else if (this.unanswered >= IDLE_MISSED_PONGS) deadAt = this.lastPingAt + p.pingIntervalMs;
    return { pingAt, deadAt };
  }

  private armLiveness(): void {
    if (this.st !== ConnState.READY) return;
    const { pingAt, deadAt } = this.dues(this.opts.policy());
    const at = Math.min(pingAt, deadAt);
    if (this.livenessTimer && this.livenessAt <= at) return; // fires early and re-arms: fine
    this.livenessTimer?.cancel();
    this.livenessAt = at;
    // whole ms, at least 1: a timer can never spin at the same instant
    const delay = Math.max(1, Math.ceil(at - this.opts.clock.now()));
    this.livenessTimer = this.opts.clock.setTimer(delay, () => this.onLiveness());
  }

  private onLiveness(): void {
    this.livenessTimer = null;
    this.livenessAt = Infinity;
    if (this.st !== ConnState.READY) return;
    const p = this.opts.policy();
    const now = this.opts.clock.now();
    const busy = this.opts.outstanding();
    if (busy && !this.busy) this.busySince = now;
    this.busy = busy;
    const { pingAt, deadAt } = this.dues(p);
    if (now >= deadAt) {
      if (busy) {
        const quiet = Math.round(now - Math.max(this.lastByteAt, this.busySince));
        this.fail('link', `no byte from the export for ${quiet} ms with requests outstanding (resend-timeout ${p.resendTimeoutMs} ms)`, 'ETIMEDOUT');
      } else {
        this.fail('link', `${this.unanswered} pings unanswered on an idle link`, 'ETIMEDOUT');
      }
      return;
    }
    if (now >= pingAt) {
      this.lastPingAt = now;
      this.unanswered++;
      this.pingsSent++;
      this.send({ cmd: Cmd.PING, id: ++this.pingSeq });
    }
    this.armLiveness();
  }

  // ---- closing ----

  /** Declare the connection broken (also used by the node on a protocol violation in a reply). */
  fail(reason: ConnCloseReason, detail: string, errno: string | null): void {
    if (this.st === ConnState.CLOSED) return;
    const wasReady = this.st === ConnState.READY;
    this.go('fail');
    this.teardown(false);
    this.opts.onClose({ reason, detail, errno, wasReady });
  }

  /**
   * Close on purpose (node stop, reconnect). graceful: a CLOSE frame, then end(); else destroy().
   * onClose still runs once, with reason 'closed'.
   */
  close(detail = 'closed', graceful = false): void {
    if (this.st === ConnState.CLOSED) return;
    const wasReady = this.st === ConnState.READY;
    if (graceful && wasReady) {
      this.send({ cmd: Cmd.CLOSE });
    }
    this.go('close');
    this.teardown(graceful && wasReady);
    this.opts.onClose({ reason: 'closed', detail, errno: null, wasReady });
  }

  private teardown(graceful: boolean): void {
    this.channel?.close();
    this.inputKey?.fill(0);
    this.inputKey = null;
    if (this.sessionKeys) {
      const k = this.sessionKeys;
      for (const b of [k.clientToServer.enc, k.clientToServer.mac, k.serverToClient.enc, k.serverToClient.mac, k.confirm]) b.fill(0);
      this.sessionKeys = null;
    }
    this.transcript = null;
    this.handshakeTimer?.cancel();
    this.handshakeTimer = null;
    this.livenessTimer?.cancel();
    this.livenessTimer = null;
    this.livenessAt = Infinity;
    const s = this.socket;
    this.socket = null;
    if (!s) return;
    if (graceful) {
      s.uncork();
      s.end();
      // the export answers our FIN with its own; if it does not, do not keep the socket forever
      this.opts.clock.setTimer(1000, () => s.destroy());
    } else {
      s.destroy();
    }
  }
}

function codeOf(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : null;
}
