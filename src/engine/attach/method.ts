// What an attach method (nbd, fuse) gives the attachment manager: the means to check it can run
// here, make the device, supervise it and tear it down leaving nothing behind.
import type { Clock } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import type { AttachmentRecord, AttachMethodName } from './record.js';
import type { System } from './system.js';

export interface MethodDeps {
  sys: System;
  clock: Clock;
  log: Logger;
  /** supervision poll interval (ms) */
  pollMs: number;
  /** bound of each helper command (losetup, nbd-client, fusermount3, umount) */
  stepTimeoutMs: number;
  /** bound of waiting for a helper to come up or go away */
  settleTimeoutMs: number;
}

export interface AttachRequest {
  name: string;
  /** the remote node's NBD unix socket */
  socket: string;
  /** export name nbd asks for (the node's name) */
  exportName: string;
  readonly: boolean;
  /** fuse: the nbdfuse mount dir, <runtimeDir>/attach/<name> */
  mountDir: string;
  /** fuse: nbdfuse's pid file, <runtimeDir>/attach/<name>.pid */
  pidFile: string;
  /** persist progress in the attachment record before the step it protects returns */
  progress(patch: Partial<AttachmentRecord>): Promise<void>;
}

export interface LiveAttachment {
  readonly method: AttachMethodName;
  readonly device: string;
  /** Start supervising; onBroken is called at most once, with a reason. */
  watch(onBroken: (reason: string) => void): void;
  /** Stop supervising (before a detach: the helper going away is then expected). */
  unwatch(): void;
  /** Remove the device, mount and helper. Throws naming whatever is left behind. */
  teardown(): Promise<void>;
}

export interface AttachMethod {
  readonly name: AttachMethodName;
  /** null when it can run here, else what is missing and how to install it */
  missing(): Promise<string | null>;
  attach(req: AttachRequest): Promise<LiveAttachment>;
  /** Clean a crashed engine's leftovers described by a record (best effort; returns what it did). */
  cleanup(rec: AttachmentRecord, paths: { mountDir: string; pidFile: string }): Promise<string[]>;
}

/** Poll `cond` until true or timeoutMs passed (then false). */
export async function waitUntil(sys: System, timeoutMs: number, cond: () => Promise<boolean>, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= deadline) return false;
    await sys.sleep(stepMs);
  }
}

/**
 * A periodic probe on the injectable clock: probe() returns null while all is well, else the
 * reason the attachment broke; onBroken then runs once and probing stops.
 */
export class Supervisor {
  private timer: { cancel(): void } | null = null;
  private phase: 'idle' | 'running' | 'stopped' = 'idle';
  /** a break reported before start(): delivered by start() */
  private pending: string | null = null;
  private onBroken: ((reason: string) => void) | null = null;

  constructor(private readonly clock: Clock, private readonly pollMs: number, private readonly probe: () => Promise<string | null>) {}

  start(onBroken: (reason: string) => void): void {
    if (this.phase !== 'idle') return;
    this.onBroken = onBroken;
    this.phase = 'running';
    if (this.pending !== null) {
      const reason = this.pending;
      queueMicrotask(() => this.broken(reason));
      return;
    }
    this.arm();
  }

  /** Stop for good (before a detach: the helper going away is then expected). */
  stop(): void {
    this.phase = 'stopped';
    this.timer?.cancel();
    this.timer = null;
  }

  /** Report a break found by other means (a helper's exit); once, and only while supervised. */
  broken(reason: string): void {
    if (this.phase === 'idle') {
      this.pending ??= reason;
      return;
    }
    if (this.phase !== 'running') return;
    this.stop();
    this.onBroken?.(reason);
  }

  private arm(): void {
    if (this.phase !== 'running') return;
    this.timer = this.clock.setTimer(this.pollMs, () => {
      this.timer = null;
      void this.probe().then((reason) => {
        if (reason !== null) this.broken(reason);
        else this.arm();
      }, () => {
        // A failing probe is not a broken device; try again next time.
        this.arm();
      });
    });
  }
}
