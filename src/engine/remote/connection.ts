// One TCP connection from a remote node to its export (DESIGN §7, §8).
//
// It moves through the declared state table of conn-state.ts, makes the handshake, moves bytes and
// has its link watched by liveness.ts; it holds no retry policy (the node reconnects, the table
// replays).
//
// Handshake (DESIGN §7, §9), frames in order; the whole of it bounded by resend-timeout:
//   (key files read fresh: the input key = cipher key ‖ hash key, as configured now)
//   HELLO          version, export name, session id, rw access, our suite, key id (when keyed), nonce,
//                  a mirror leg's claim
//   HELLO_REPLY    refused (status): EACCES → denied (auth-failed when the message says
//                  "authentication failed"), EPROTO → suite-mismatch, EPERM → taken-over (the
//                  mirror claim is overtaken), else link. Another suite than
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
import { ConnState, refusalReason, transition, type ConnCloseInfo, type ConnCloseReason, type ConnEvent } from './conn-state.js';
import { Liveness } from './liveness.js';
import type { Logger } from '../../util/log.js';
import { PEER_MESSAGE_MAX, peerText } from '../../util/escape.js';
import {
  Access, Cmd, FrameDecoder, Op, WIRE_VERSION, cmdName, decodeAuth, decodeHelloReply, decodeRefusal, encodeAuth, encodeFrame,
  encodeHello, type Frame, type FrameInit, type HelloReply, type MirrorClaim,
} from '../../protocol/wire.js';
import { MAX_PAYLOAD } from '../../protocol/wire-header.js';
import { payloadPool } from '../io/payload-pool.js';
import {
  authProof, deriveSessionKeys, keyId, proofsEqual, type DirectionKeys, type SessionKeys, type Suite,
} from '../../protocol/suites.js';
import { DEFAULT_CRYPTO, type CryptoConfig, type Policy } from '../types.js';
import { NO_KEYS, SealedChannel, type FrameCrypto } from '../channel.js';
import { configSuite, loadNodeKey } from '../keys.js';
import type { LegOp } from './target.js';
import { TurnWriter } from '../io/turn-writer.js';

import type { Txn, TxnSender } from './transactions.js';

/** The part of net.Socket a connection uses (tests pass an in-memory fake). */
export interface WireSocket {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type, so net.Socket fits
  on(event: string, listener: (...args: any[]) => void): unknown;
  write(chunk: Buffer, written?: (err?: Error | null) => void): boolean;
  cork(): void;
  uncork(): void;
  end(): void;
  destroy(): void;
  setNoDelay(noDelay?: boolean): unknown;
}

export type SocketFactory = (host: string, port: number) => WireSocket;

export const WIRE_OP: Readonly<Record<LegOp, Op>> = {
  'read': Op.READ,
  'write': Op.WRITE,
  'flush': Op.FLUSH,
  'trim': Op.TRIM,
  'write-zeroes': Op.WRITE_ZEROES,
  'block-status': Op.BLOCK_STATUS,
  'digest': Op.DIGEST,
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
  /** a mirror leg's claim, sent in the HELLO (null: none) */
  mirrorClaim?: MirrorClaim | null;
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
  /** the socket's writer, made with it */
  private out: TurnWriter | null = null;

  /** the suite of this handshake (from the config at start) and its input key until derived */
  private suite: Suite | null = null;
  private inputKey: Buffer | null = null;
  /** the HELLO payload as sent, then HELLO ‖ HELLO_REPLY (the transcript) */
  private transcript: Buffer | null = null;
  private clientNonce: Buffer | null = null;
  private sessionKeys: SessionKeys | null = null;
  /** once READY: every frame both ways */
  private channel: SealedChannel | null = null;

  /** HELLO_REPLY once READY */
  reply: HelloReply | null = null;
  private readonly live: Liveness;

  constructor(private readonly opts: ConnectionOptions) {
    this.live = new Liveness({
      clock: opts.clock, policy: opts.policy, outstanding: opts.outstanding,
      ping: (id) => this.send({ cmd: Cmd.PING, id }),
      dead: (detail) => this.fail('link', detail, 'ETIMEDOUT'),
    });
  }

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
    this.out = new TurnWriter(sock);
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
    this.live.heard(this.opts.clock.now());
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
      mirrorClaim: this.opts.mirrorClaim ?? null,
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
    this.live.heard(this.opts.clock.now());
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
    this.live.start();
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

  /** One writev per event-loop turn (TurnWriter). written: the socket wrote the last part. */
  private write(parts: Buffer[], written?: () => void): void {
    if (!this.out || this.st === ConnState.CLOSED) return;
    this.out.write(parts, written);
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
    this.live.workSent();
  }

  /** Re-evaluate the liveness timer after a policy change. */
  policyChanged(): void {
    if (this.st !== ConnState.READY) return;
    this.live.policyChanged();
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
    this.live.stop();
    const s = this.socket;
    const out = this.out;
    this.socket = null;
    this.out = null;
    if (!s) return;
    if (graceful) {
      out?.flush();
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
