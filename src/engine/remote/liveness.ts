// A ready connection's liveness (DESIGN §8): not per-request timers but one timer per connection,
// from the injected Clock. lastByteAt is refreshed by ANY byte received. With work outstanding, a
// PING goes out after min(ping-interval, resend-timeout/3) of silence and the link is dead after
// resend-timeout of silence; when idle, a PING after ping-interval of silence and dead after
// IDLE_MISSED_PONGS unanswered pings. A slow export that still answers PINGs is never declared dead.
// It decides when; the connection sends the PING and closes the link.
import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Policy } from '../types.js';

/** Missed pongs after which an idle link is dead. */
export const IDLE_MISSED_PONGS = 3;

export interface LivenessOptions {
  clock: Clock;
  /** read at every use: a policy change applies at the next check (call policyChanged()) */
  policy: () => Policy;
  /** true while transactions sent on this connection await replies */
  outstanding: () => boolean;
  /** send a PING with this id */
  ping: (id: number) => void;
  /** the link is dead: why */
  dead: (detail: string) => void;
}

export class Liveness {
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
  private timer: TimerHandle | null = null;
  private timerAt = Infinity;
  /** between start() and stop(): the connection is READY */
  private watching = false;
  /** counter for debug logs */
  pingsSent = 0;

  constructor(private readonly opts: LivenessOptions) {}

  /** A byte arrived. */
  heard(now: number): void {
    this.lastByteAt = now;
    this.unanswered = 0;
  }

  /** The connection became READY: watch from now. */
  start(): void {
    this.watching = true;
    this.busy = this.opts.outstanding();
    this.busySince = this.opts.clock.now();
    this.arm();
  }

  /** A request went out: with work outstanding the windows are shorter, from now. */
  workSent(): void {
    if (this.busy) return;
    this.busy = true;
    this.busySince = this.opts.clock.now();
    this.arm();
  }

  /** Re-evaluate the timer after a policy change. */
  policyChanged(): void {
    if (!this.watching) return;
    this.cancel();
    this.arm();
  }

  /** The connection closed. */
  stop(): void {
    this.watching = false;
    this.cancel();
  }

  private cancel(): void {
    this.timer?.cancel();
    this.timer = null;
    this.timerAt = Infinity;
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

  private arm(): void {
    if (!this.watching) return;
    const { pingAt, deadAt } = this.dues(this.opts.policy());
    const at = Math.min(pingAt, deadAt);
    if (this.timer && this.timerAt <= at) return; // fires early and re-arms: fine
    this.timer?.cancel();
    this.timerAt = at;
    // whole ms, at least 1: a timer can never spin at the same instant
    const delay = Math.max(1, Math.ceil(at - this.opts.clock.now()));
    this.timer = this.opts.clock.setTimer(delay, () => this.onTimer());
  }

  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (!this.watching) return;
    const p = this.opts.policy();
    const now = this.opts.clock.now();
    const busy = this.opts.outstanding();
    if (busy && !this.busy) this.busySince = now;
    this.busy = busy;
    const { pingAt, deadAt } = this.dues(p);
    if (now >= deadAt) {
      if (busy) {
        const quiet = Math.round(now - Math.max(this.lastByteAt, this.busySince));
        this.opts.dead(`no byte from the export for ${quiet} ms with requests outstanding (resend-timeout ${p.resendTimeoutMs} ms)`);
      } else {
        this.opts.dead(`${this.unanswered} pings unanswered on an idle link`);
      }
      return;
    }
    if (now >= pingAt) {
      this.lastPingAt = now;
      this.unanswered++;
      this.pingsSent++;
      this.opts.ping(++this.pingSeq);
    }
    this.arm();
  }
}
