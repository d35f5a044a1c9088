// One NBD client connection's socket life: reading (into buffers the decoder chooses), pausing
// while blocked, the corked writer, and the states below. Negotiation (nbd-negotiation.ts) and
// the transmission loop (nbd-transmission.ts) decide what to answer; this moves the bytes.
//
//   state 'options'        negotiation (client flags first, then options)
//   state 'transmission'   requests; reading pauses while blocked (target capacity, the
//                          in-flight cap, or MAX_CONN_BYTES of data held for this client)
//   state 'disconnecting'  DISC received (or endpoint draining): no new requests, in-flight ones
//                          still answered, then the socket is ended
//   state 'closed'         socket gone; late done() calls are dropped
//
// Graceful close: stop reading, answer requests already buffered with ESHUTDOWN, abandon the
// unsubmitted rest of a split request with ESHUTDOWN, wait for submitted ones, then end.
import type net from 'node:net';
import type { BlockTarget } from './target.js';
import type { Logger } from '../../util/log.js';
import type { Clock, TimerHandle } from '../../util/clock.js';
import { errnoOf } from '../../util/errors.js';
import { NbdServerDecoder, type NbdMessage } from '../../protocol/nbd-decoder.js';
import { payloadPool } from '../io/payload-pool.js';
import { ReadGate } from '../io/read-gate.js';
import { TurnWriter } from '../io/turn-writer.js';
import { NbdNegotiation, type OptionOutcome } from './nbd-negotiation.js';
import { NbdTransmission, type TransmissionLink } from './nbd-transmission.js';

/** NBD requests per connection accepted and not yet answered (then the socket is not read). */
export const MAX_CONN_INFLIGHT = 128;
/**
 * Bytes per connection (in-flight READ/WRITE lengths + unsent reply bytes) above which the socket
 * is not read. One request of up to MAX_PAYLOAD is always taken when under the bound.
 */
export const MAX_CONN_BYTES = 64 * 1024 * 1024;
/** After we end a socket, how long the peer gets to close its side. */
const END_GRACE_MS = 2000;

type ConnState = 'options' | 'transmission' | 'disconnecting' | 'closed';
type Blocked = null | 'capacity' | 'inflight' | 'bytes';

export class NbdConnection implements TransmissionLink {
  private state: ConnState = 'options';
  private readonly decoder = new NbdServerDecoder({ payloads: payloadPool });
  private readonly negotiation: NbdNegotiation;
  private readonly tx: NbdTransmission;
  private blocked: Blocked = null;
  private unsubscribeCapacity: (() => void) | null = null;
  private pumping = false;
  private draining = false;
  private ended = false;
  private readonly out: TurnWriter;
  private readonly clock: Clock;
  /** paused while requests may not be taken; a close is still seen (ReadGate) */
  private readonly reading: ReadGate;
  /** cuts the client off if option negotiation is not over in time */
  private handshakeTimer: TimerHandle | null;

  constructor(
    private readonly socket: net.Socket,
    /** the TCP peer's address ("unix" on the unix socket), for the per-address caps */
    readonly addr: string,
    private readonly target: BlockTarget,
    private readonly log: Logger,
    dataEvents: boolean,
    handshake: { clock: Clock; ms: number },
    private readonly onClose: () => void,
  ) {
    this.clock = handshake.clock;
    this.out = new TurnWriter(socket, () => this.maybeUnblockBytes());
    this.reading = new ReadGate(socket, !dataEvents, () => this.decoder.buffered);
    this.negotiation = new NbdNegotiation(target, log, (b) => this.send(b));
    this.tx = new NbdTransmission(target, log, this);
    this.handshakeTimer = handshake.clock.setTimer(handshake.ms, () => {
      this.handshakeTimer = null;
      if (this.state !== 'options') return;
      this.log.warn('NBD client did not finish the handshake in time; closing it', { timeoutMs: handshake.ms });
      this.socket.destroy();
    });
    if (dataEvents) socket.on('data', (chunk: Buffer) => this.onBytes(chunk, false));
    socket.on('drain', () => this.maybeUnblockBytes());
    socket.on('end', () => this.onPeerEnd());
    socket.on('error', (err) => this.log.debug('NBD connection error', { errno: errnoOf(err), error: err.message }));
    socket.on('close', () => {
      this.state = 'closed';
      this.handshakeTimer?.cancel();
      this.handshakeTimer = null;
      this.blocked = null;
      this.unsubscribeCapacity?.();
      this.unsubscribeCapacity = null;
      this.tx.job = null;
      if (this.tx.inflight > 0) this.log.debug('NBD connection closed with requests in flight', { inflight: this.tx.inflight });
      this.log.debug('NBD connection closed');
      this.onClose();
    });
    this.log.debug('NBD connection opened');
    this.negotiation.greet();
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
    this.reading.pause();
    this.dropCapacityWait();
    this.blocked = null;
    this.pump();
    this.maybeFinish();
  }

  // ── TransmissionLink ─────────────────────────────────────────────────────────────────────

  get stopping(): boolean {
    return this.draining || this.state !== 'transmission';
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  disconnect(): void {
    this.state = 'disconnecting';
    this.dropCapacityWait();
    this.blocked = null;
    this.reading.resume(); // keep reading so the peer's close is seen; data is discarded
    this.maybeFinish();
  }

  answered(): void {
    if (this.blocked === 'inflight' && this.tx.inflight < MAX_CONN_INFLIGHT) this.unblock();
    else if (this.blocked === 'bytes') this.maybeUnblockBytes();
    else this.maybeFinish();
  }

  // ── Reading ──────────────────────────────────────────────────────────────────────────────

  /** Bytes read; transient: `chunk` is overwritten once this returns (a reused read buffer). */
  onBytes(chunk: Buffer, transient: boolean): void {
    if (this.state === 'closed' || this.state === 'disconnecting') return; // discard after DISC
    if (transient) this.decoder.feedTransient(chunk);
    else this.decoder.feed(chunk);
    this.pump();
    this.reading.afterRead();
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
        if (this.tx.job !== null && !this.tx.continueJob()) { this.block('capacity'); return; }
        if (!this.draining) {
          if (this.tx.inflight >= MAX_CONN_INFLIGHT) { this.block('inflight'); return; }
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

  private handle(msg: NbdMessage): void {
    switch (msg.kind) {
      case 'client-flags':
        if (!this.negotiation.clientFlags(msg.flags)) this.socket.destroy();
        return;
      case 'option': return this.afterOption(this.negotiation.option(msg.option, msg.data));
      case 'request': return this.tx.handleRequest(msg);
    }
  }

  private afterOption(outcome: OptionOutcome): void {
    switch (outcome) {
      case 'options': return;
      case 'transmission': return this.enterTransmission();
      case 'end': return this.endSocket();
      case 'drop': this.socket.destroy(); return;
    }
  }

  private enterTransmission(): void {
    this.state = 'transmission';
    this.handshakeTimer?.cancel();
    this.handshakeTimer = null;
    this.decoder.phase = 'transmission';
    this.tx.agreed = this.negotiation.agreed();
    this.log.debug('NBD transmission phase', { ...this.tx.agreed });
  }

  private block(reason: Exclude<Blocked, null>): void {
    this.blocked = reason;
    this.reading.pause();
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
    if (!this.draining && this.state !== 'disconnecting') this.reading.resume();
    this.pump();
    this.maybeFinish();
  }

  private heldBytes(): number {
    return this.tx.inflightBytes + this.socket.writableLength;
  }

  private maybeUnblockBytes(): void {
    if (this.blocked === 'bytes' && this.heldBytes() <= MAX_CONN_BYTES) this.unblock();
  }

  private dropCapacityWait(): void {
    this.unsubscribeCapacity?.();
    this.unsubscribeCapacity = null;
  }

  /**
   * The client's FIN. The server is created with allowHalfOpen so this does not end our side at
   * once: a client may send DISC and shut down its sending side at once, and it is still owed
   * the replies of its requests in flight (maybeFinish ends the socket after them). A FIN
   * without DISC is a hard disconnect (NBD spec): nothing more is owed.
   */
  private onPeerEnd(): void {
    if (this.state !== 'disconnecting') this.endSocket();
  }

  /** After DISC or while draining: end once every accepted request is answered. */
  private maybeFinish(): void {
    if (this.tx.inflight > 0 || this.tx.job !== null || this.state === 'closed') return;
    if (this.state === 'disconnecting') { this.endSocket(); return; }
    // Draining: pump() answers what is buffered (ESHUTDOWN) before this may end the socket.
    if (this.draining && !this.pumping) this.endSocket();
  }

  // ── Writing ──────────────────────────────────────────────────────────────────────────────

  /**
   * Queue bytes; everything queued while handling one event goes out in one writev.
   * written: runs once the socket is done with the bytes (written, or the socket failed).
   */
  send(bufs: Buffer | Buffer[], written?: () => void): void {
    if (this.ended || this.socket.destroyed) return;
    this.out.write(bufs, written);
  }

  private endSocket(): void {
    if (this.ended) return;
    this.out.flush();
    this.ended = true;
    if (this.state !== 'closed') this.state = 'disconnecting'; // nothing more is processed
    this.reading.resume();
    this.socket.end();
    this.clock.setTimer(END_GRACE_MS, () => this.socket.destroy());
  }
}
