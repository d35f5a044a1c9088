// One client connection of an export node: handshake (HELLO → ACL, suite, key, AUTH, fencing)
// then the request loop (PING/PONG, IO → validate → dedup → backend → IO_RESPONSE).
//
// Handshake (DESIGN §7, §9), frames in order:
//   client HELLO            version, export name, session id, access, suite, key id, nonce
//   → checks: serving, version, export name, ACL (deny), suite == ours exactly (EPROTO names both),
//     key-bound ACL entry: the HELLO's key id must be that key's (EACCES), key files readable
//   suites without a key (none, none+<h>): fencing, then HELLO_REPLY; serving.
//   suites with a key: HELLO_REPLY (granted, suite, server nonce), then
//   client AUTH             HMAC(confirm, "client" ‖ HELLO payload ‖ HELLO_REPLY payload)
//   → wrong proof: AUTH with status EACCES + message, close; 'authentication failed' logged,
//     event auth-failed {addr}. Right proof: fencing (only now may it take a session over), then
//   server AUTH             HMAC(confirm, "server" ‖ transcript); serving.
// After the handshake every frame in each direction goes through a SealedChannel (sequence numbers
// from 0, header authenticated, large frames sealed/opened in the crypto pool, written and
// delivered in order). The whole handshake, AUTH included, is bounded by the HELLO timeout.
//
// Reading is pull-style: socket chunks are fed to a FrameDecoder and frames are pulled while the
// connection may take them. At the per-connection in-flight cap, or at MAX_BYTES_IN_FLIGHT of
// data in flight (replies piling up unread, large writes), the socket is paused; frames already
// received are still pulled, so PINGs among them are answered at once, and IO frames wait in
// `waiting` until a backend call finishes or the socket drains.
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import { errnoNumber, errnoOf } from '../../util/errors.js';
import { peerText } from '../../util/escape.js';
import {
  Cmd, Flag, FrameDecoder, HEADER_SIZE, Op, WIRE_VERSION, cmdName, decodeAuth, decodeHeader, decodeHello, encodeAuth,
  encodeFrame, encodeHelloReply, encodeRefusal, opName, type Frame, type FrameInit, type Hello,
} from '../../protocol/wire.js';
import { MAX_PAYLOAD } from '../../protocol/wire-header.js';
import { payloadPool, releasePayload } from '../io/payload-pool.js';
import {
  authProof, deriveSessionKeys, keyId, proofsEqual, suiteByName, type DirectionKeys, type SessionKeys, type Suite,
} from '../../protocol/suites.js';
import { NO_KEYS, SealedChannel, type FrameCrypto } from '../channel.js';
import { configSuite, loadNodeKey, readKeyFile } from '../keys.js';
import type { AclEntry, EventFields, EventName, ExportConfig, Limits } from '../types.js';
import type { Backend } from './backend.js';
import type { Session, SessionTable } from './dedup.js';
import { accessName, entryAccess, grantAccess } from './acl.js';
import { validateIo } from './validate.js';

/** Preferred/minimum block size announced in HELLO_REPLY (the backend is byte-granular). */
export const BLOCK_SIZE = 512;
/** A HELLO is small: refuse a first frame announcing more than this before anything is allocated. */
export const MAX_HELLO_PAYLOAD = 64 * 1024;
/**
 * Bytes in flight a connection may have (READ data being read and its reply being sealed or in the
 * socket's buffer, WRITE payloads being written) before it stops dispatching and reading: a client
 * that never reads its replies, or floods large writes, costs at most about this much (a single
 * larger request still goes alone). See the worst-case memory formula in dst(8) LIMITS.
 */
export const MAX_BYTES_IN_FLIGHT = 32 * 1024 * 1024;
/** Bytes still read and held while reading is paused (user-buffer sockets). */
const READ_AHEAD = 64 * 1024;
/** How long a refused or drained connection may linger after our FIN before it is destroyed. */
export const LINGER_MS = 2000;
/** Frames being opened (crypto pool) before the socket is paused. */
export const MAX_PENDING_OPENS = 32;

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
  /** the engine-wide crypto pool (large frames are sealed/opened on its workers) */
  readonly cryptoPool: FrameCrypto | null;
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
  | 'handshake'  // HELLO (or AUTH) received: checks / key loading / fencing wait; nothing more is read
  | 'auth'       // HELLO_REPLY sent; waiting for the client's AUTH
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
  private readonly decoder = new FrameDecoder(MAX_PAYLOAD, payloadPool);
  private headerChecked = false;
  private preHeader: Buffer | null = null;
  private helloTimer: TimerHandle | null = null;
  private lingerTimer: TimerHandle | null = null;
  private session: Session<Connection> | null = null;
  private granted = 0;
  private inflight = 0;
  /** requestBytes() of the calls issued to the backend and not answered yet */
  private callBytes = 0;
  private waiting: Frame[] = [];
  private drainWaiters: (() => void)[] = [];
  private closeReason: string | null = null;
  /** the sealed channel, once the handshake is done */
  private channel: SealedChannel | null = null;
  /** between HELLO_REPLY and the client's AUTH */
  private pendingAuth: { suite: Suite; keys: SessionKeys; transcript: Buffer; granted: number; sessionId: Buffer } | null = null;
  /** HELLO_REPLY went out (a later refusal is an AUTH frame) */
  private replied = false;
  private reconnected = false;
  private announced = false;
  private closedHandled = false;
  private corked = false;
  private readPaused = false;
  private readonly log: Logger;

  constructor(private readonly host: ExportHost, readonly socket: Socket, private readonly userBuffer = false) {
    this.peer = socket.remoteAddress ?? 'unknown';
    const port = socket.remotePort ?? 0;
    this.label = this.peer.includes(':') ? `[${this.peer}]:${port}` : `${this.peer}:${port}`;
    this.log = host.log.child({ peer: this.label });
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
    return this.inflight;
  }

  /** Not past the handshake yet (counted against max-handshakes-per-addr). */
  get handshaking(): boolean {
    return this.phase === 'hello' || this.phase === 'handshake' || this.phase === 'auth';
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
    if (transient) this.decoder.feedTransient(chunk);
    else this.decoder.feed(chunk);
    this.pump();
    if (this.readPaused && this.decoder.pendingBytes >= READ_AHEAD) this.socket.pause();
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
        while (this.waiting.length > 0 && this.canDispatch(this.waiting[0]!)) this.dispatch(this.waiting.shift()!);
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

  /** Bytes in flight: backend calls' data, and replies not yet handed to the kernel. */
  private committedBytes(): number {
    return this.callBytes + this.socket.writableLength + (this.channel?.pendingOutBytes ?? 0);
  }

  /** May `frame` be dispatched now (or, without a frame, is there room for one more at all)? */
  private canDispatch(frame?: Frame): boolean {
    if (this.inflight >= this.host.limits.maxInflightPerConnection) return false;
    const committed = this.committedBytes();
    if (committed === 0) return true; // alone, whatever its size
    return committed < MAX_BYTES_IN_FLIGHT && committed + (frame ? requestBytes(frame) : 0) <= MAX_BYTES_IN_FLIGHT;
  }

  /** Read more only while what is in flight and what is being opened leave room. */
  private roomToRead(): boolean {
    const opening = this.channel ? this.channel.pendingInBytes : 0;
    return this.canDispatch() && (this.channel === null || this.channel.pendingIn < MAX_PENDING_OPENS)
      && (opening === 0 || this.committedBytes() + opening < MAX_BYTES_IN_FLIGHT);
  }

  private updateReading(): void {
    const read = this.phase === 'hello' || this.phase === 'auth' || this.phase === 'lingering'
      || (this.phase === 'serving' && this.waiting.length === 0 && this.roomToRead());
    if (read) {
      if (this.readPaused) {
        this.readPaused = false;
        this.socket.resume();
      }
    } else if (!this.readPaused) {
      // like a paused net.Socket: keep reading (up to READ_AHEAD held bytes), so PINGs and the
      // peer's close are still seen; a user-buffer socket would otherwise stop reading at once
      this.readPaused = true;
      if (!this.userBuffer || this.decoder.pendingBytes >= READ_AHEAD) this.socket.pause();
    }
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
        if (this.waiting.length === 0 && this.canDispatch(frame)) this.dispatch(frame);
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
    const host = this.host;
    const cfg = host.config();
    const node = host.name;
    if (!host.serving()) return this.refuse('ESHUTDOWN', `node ${node} is not serving`);
    if (hello.version !== WIRE_VERSION) {
      return this.refuse('EPROTO', `protocol version ${hello.version} is not supported by node ${node} (it speaks ${WIRE_VERSION})`);
    }
    if (hello.exportName !== '' && hello.exportName !== node) {
      return this.refuse('ENOENT', `no export "${peerText(hello.exportName)}" here: node ${node} serves "" and "${node}"`);
    }
    const entry = host.aclEntry(this.peer);
    if (!entry || entry.perm === 'none') {
      host.emit('acl-denied', { addr: this.peer });
      return this.refuse('EACCES', `address ${this.peer} is not allowed by node ${node}`);
    }
    const suiteName = host.suite();
    if (hello.suite !== suiteName) {
      const message = suiteMismatchMessage(hello.suite, node, suiteName);
      this.log.error(`${message} (client ${this.label})`, { op: 'hello', addr: this.peer });
      host.emit('auth-failed', { addr: this.peer, message });
      return this.refuse('EPROTO', message);
    }
    let suite: Suite;
    try {
      suite = configSuite(cfg.crypto);
    } catch (err) {
      this.log.error(`cannot serve suite ${suiteName}: ${(err as Error).message}`, { op: 'hello' });
      return this.refuse('EPROTO', `export ${node} has an inconsistent crypto configuration (see its log)`);
    }
    const granted = grantAccess(hello.access, entry, cfg.readonly);
    if (granted === 0) {
      return this.refuse('EACCES', `address ${this.peer} may not ${accessName(hello.access)} on node ${node}`
        + ` (allowed: ${accessName(entryAccess(entry, cfg.readonly))})`);
    }

    // The input key: the key-bound ACL entry's key, else the node's cipher key ‖ hash key.
    let inputKey: Buffer | null = null;
    if (entry.keyFile !== null) {
      if (!suite.needsKey) {
        return this.authRefuse(`authentication failed: the ACL entry for ${this.peer} on export ${node} is bound to a key,`
          + ` but suite ${suite.name} proves no key; configure a keyed suite on both sides`);
      }
      let key: Buffer;
      try {
        key = await readKeyFile(entry.keyFile, this.log);
      } catch (err) {
        this.log.error(`cannot load the key bound to ${entry.addr}: ${(err as Error).message}`, { op: 'key', errno: errnoOf(err) });
        if (this.phase !== 'handshake') return;
        return this.authRefuse(`authentication failed: export ${node} cannot load the key bound to ${this.peer} (see its log)`);
      }
      if (this.phase !== 'handshake') {
        key.fill(0);
        return;
      }
      if (!hello.keyId || !proofsEqual(hello.keyId, keyId(key))) {
        key.fill(0);
        return this.authRefuse(`authentication failed: key-bound ACL entry for ${this.peer} needs another key`);
      }
      inputKey = key;
    } else if (suite.needsKey) {
      try {
        inputKey = await loadNodeKey(cfg.crypto, suite, this.log);
      } catch (err) {
        this.log.error(`cannot load the node's key: ${(err as Error).message}`, { op: 'key', errno: errnoOf(err) });
        if (this.phase !== 'handshake') return;
        return this.authRefuse(`authentication failed: export ${node} cannot load its key (see its log)`);
      }
      if (this.phase !== 'handshake') {
        inputKey?.fill(0);
        return;
      }
    }

    const reply = (nonce: Buffer): Buffer => encodeHelloReply({
      identity: host.identity(),
      size: host.size(),
      blockSize: BLOCK_SIZE,
      maxRequest: host.maxRequest(),
      granted,
      suite: suite.name,
      nonce,
      message: null,
    });
    if (!suite.needsKey || inputKey === null) {
      // none / none+<h>: nothing to prove; admit, then answer
      this.stopHelloTimer();
      if (!await this.admit(hello.sessionId, granted)) return;
      this.send({ cmd: Cmd.HELLO_REPLY, payload: reply(randomBytes(32)) });
      this.replied = true;
      this.startServing(suite, NO_KEYS, NO_KEYS);
      return;
    }
    const serverNonce = randomBytes(32);
    const replyBytes = reply(serverNonce);
    const keys = deriveSessionKeys(suite, inputKey, hello.nonce, serverNonce);
    inputKey.fill(0);
    this.pendingAuth = {
      suite, keys, transcript: Buffer.concat([helloBytes, replyBytes]), granted, sessionId: hello.sessionId,
    };
    this.send({ cmd: Cmd.HELLO_REPLY, payload: replyBytes });
    this.replied = true;
    this.phase = 'auth';
    this.pump();
  }

  /** The client's AUTH: its key proof over the transcript. Nothing is taken over before it checks out. */
  private onAuth(frame: Frame): void {
    const pa = this.pendingAuth!;
    this.pendingAuth = null;
    this.phase = 'handshake';
    let proof: Buffer | null = null;
    if (frame.status === 0) {
      try {
        proof = decodeAuth(frame.payload).proof;
      } catch { /* a malformed AUTH proves nothing */ }
    }
    if (!proof || !proofsEqual(proof, authProof(pa.keys.confirm, 'client', pa.transcript))) {
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

  private async finishAuth(pa: NonNullable<Connection['pendingAuth']>): Promise<void> {
    if (!await this.admit(pa.sessionId, pa.granted)) {
      wipeKeys(pa.keys);
      return;
    }
    this.send({ cmd: Cmd.AUTH, payload: encodeAuth({ proof: authProof(pa.keys.confirm, 'server', pa.transcript) }) });
    pa.keys.confirm.fill(0);
    this.startServing(pa.suite, pa.keys.serverToClient, pa.keys.clientToServer);
  }

  /**
   * Join the session; fencing: a known session's old connections are destroyed and their backend
   * calls awaited. Only an admitted (and, with a key, authenticated) HELLO may take a session over.
   * false = the connection closed or was refused meanwhile.
   */
  private async admit(sessionId: Buffer, granted: number): Promise<boolean> {
    const host = this.host;
    const { session, known } = host.sessions.obtain(sessionId, host.clock.now());
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
      if (this.phase !== 'handshake') return false; // closed while we waited
      if (!host.serving()) {
        this.refuse('ESHUTDOWN', `node ${host.name} is not serving`);
        return false;
      }
    }
    if (known) host.noteReconnect();
    this.granted = granted;
    this.reconnected = known;
    session.hellos++;
    session.lastUsed = host.clock.now();
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
    const session = this.session!;
    this.log.info('session connected', {
      op: 'hello', session: session.hex, granted: accessName(this.granted), suite: suite.name, reconnect: this.reconnected,
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
    this.callBytes += requestBytes(frame);
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
    this.callBytes -= requestBytes(frame);
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
    }, data === null ? undefined : () => releasePayload(data));
  }

  /** Send a frame: sealed once the handshake is done, plain before. done: the payload is no longer needed. */
  private send(init: FrameInit, done?: () => void): void {
    if (this.channel) this.channel.send(init, done);
    else this.writeParts(encodeFrame(init), done);
  }

  /** One writev per event-loop turn: cork on the first write of a turn, uncork on the next tick. */
  private writeParts(parts: Buffer[], written?: () => void): void {
    const s = this.socket;
    if (s.destroyed || !s.writable) return;
    if (!this.corked) {
      this.corked = true;
      s.cork();
      process.nextTick(() => this.flushOutput());
    }
    const last = parts.length - 1;
    for (let i = 0; i < last; i++) s.write(parts[i]!);
    // A request waiting for room in MAX_BYTES_IN_FLIGHT may be waiting for these bytes to leave:
    // 'drain' only fires after a write that filled the socket's buffer, so look again here
    // (not after a failed write: the socket is going, nothing more is dispatched for it).
    s.write(parts[last]!, (err) => {
      written?.();
      if (!err && this.waiting.length > 0) this.pump();
    });
  }

  /** Write what this turn queued. Also before a destroy, which would drop it. */
  private flushOutput(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
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
    this.flushOutput();
    this.phase = 'closed';
    this.waiting = [];
    this.dropCrypto();
    this.helloTimer?.cancel();
    this.helloTimer = null;
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.closedHandled) return;
    this.closedHandled = true;
    this.phase = 'closed';
    this.waiting = [];
    this.dropCrypto();
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

  /** Forget the channel and any half-done handshake keys (wiped). */
  private dropCrypto(): void {
    this.channel?.close();
    if (this.pendingAuth) {
      wipeKeys(this.pendingAuth.keys);
      this.pendingAuth = null;
    }
  }

  private forgetFromSession(): void {
    if (this.session && this.closedHandled) {
      this.session.connections.delete(this);
      this.session.lastUsed = this.host.clock.now();
    }
  }
}

/**
 * The refusal message of a suite mismatch: names both suites (the client's escaped, it is peer
 * text), says when crypto is on one side only, and says when the client's is no suite at all.
 */
export function suiteMismatchMessage(client: string, node: string, ours: string): string {
  const m = `suite mismatch: client asked for "${peerText(client)}", export ${node} uses ${ours}`;
  if (!knownSuite(client)) return `${m} (that is not a suite name; suite names are lowercase, e.g. none, aes-gcm, aes-ctr+hmac-sha256)`;
  if (client === 'none') return `${m} (crypto is configured on the export only)`;
  if (ours === 'none') return `${m} (crypto is configured on the client only)`;
  return m;
}

function knownSuite(name: string): boolean {
  try {
    return suiteByName(name).name === name;
  } catch {
    return false;
  }
}

/** Data bytes a request holds while it runs: a READ's reply, a WRITE's payload (others: a header). */
function requestBytes(frame: Frame): number {
  return frame.op === Op.READ ? frame.length : frame.payload.length;
}

function wipeKeys(k: SessionKeys): void {
  for (const b of [k.clientToServer.enc, k.clientToServer.mac, k.serverToClient.enc, k.serverToClient.mac, k.confirm]) b.fill(0);
}

/**
 * Refuse a connection at accept (ACL, connection caps): a HELLO_REPLY refusal, then close. With a
 * clock the peer gets LINGER_MS to read it (input discarded); without, the socket is destroyed as
 * soon as the refusal is written (no timer: used when too many refused sockets already linger).
 */
export function refuseSocket(socket: Socket, errno: string, message: string, clock: Clock | null): void {
  socket.on('error', () => {});
  for (const p of encodeFrame({ cmd: Cmd.HELLO_REPLY, status: errnoNumber(errno), payload: encodeRefusal(message) })) socket.write(p);
  if (clock === null) {
    socket.destroySoon();
    return;
  }
  socket.on('data', () => {}); // discard
  socket.on('end', () => socket.destroy());
  socket.end();
  const t = clock.setTimer(LINGER_MS, () => socket.destroy());
  socket.on('close', () => t.cancel());
}
