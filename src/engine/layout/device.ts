// What a remote node serves over NBD when it has several legs (issue 14, DESIGN §13): a device
// made of leg ports. The node owns the legs and the NBD endpoint; the device owns the mapping of
// requests onto legs and completes each request exactly once. Split devices (linear, stripe) are
// in split-device.ts, the mirror in mirror.ts. The node reports leg-state events from legState().
import type { BlockDone, BlockRequest } from '../remote/target.js';
import type { Lineage } from './lineage.js';
import type { LegShow, LegState, LegStats, VerifyOptions, VerifyReport, VerifyShow } from '../types.js';

/** What the node can serve now: every block (ready), some blocks wait for a leg (backoff), none (failed). */
export type DeviceHealth = 'ready' | 'backoff' | 'failed';

/** The mirror parts of a leg's show. */
export type LegSync = Pick<LegShow, 'outOfSyncBytes' | 'resync' | 'generation'> & Pick<LegStats, 'resyncedBytes' | 'comparedBytes'>;

export interface Device {
  /** bytes the device serves */
  readonly size: number;
  maxRequest(): number;
  /** largest TRIM/WRITE_ZEROES a request may be */
  maxZeroRequest(): number;
  /** WRITE_ZEROES with FAST_ZERO is honoured: every leg it would go to honours it */
  fastZero(): boolean;
  /** false while the device has as many requests in flight as the policy allows */
  hasCapacity(): boolean;
  onCapacity(listener: () => void): () => void;
  /** one request (in range, ≤ maxRequest()); done runs exactly once */
  submit(req: BlockRequest, done: BlockDone): void;
  health(): DeviceHealth;
  /** mirror: fewer than all legs in sync; null for other layouts */
  degraded(): boolean | null;
  legState(leg: number): LegState;
  /** why the leg is in its state (null when in sync) */
  legReason(leg: number): string | null;
  /** the mirror parts of a leg's show */
  legSync(leg: number): LegSync;
  /** a leg's link phase moved (connected, lost, failed) */
  legPhaseChanged(leg: number): void;
  /** the policy changed (max-inflight, leg-timeout; the resync rates are read at each copy) */
  policyChanged(): void;
  /** mirror: one verify pass (other layouts have nothing to compare) */
  verify?(o: VerifyOptions): Promise<VerifyReport>;
  /** mirror: the running or last verify pass */
  verifyShow?(): VerifyShow | null;
  /** mirror: its live lineage (uuid, generations) */
  lineage?(): Lineage;
  /** requests in flight at the device */
  inflight(): number;
  /** after the NBD endpoint closed and the legs drained: stop background work, save state */
  close(): Promise<void>;
}

/** The device's in-flight count against max-inflight, and the listeners woken when a slot frees. */
export class InflightGate {
  private n = 0;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly limit: () => number) {}

  hasCapacity(): boolean {
    return this.n < this.limit();
  }

  onCapacity(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  inflight(): number {
    return this.n;
  }

  /** Count a request in; the returned done counts it out, then wakes the listeners if a slot is free. */
  enter(done: BlockDone): BlockDone {
    this.n++;
    return (errno, data) => {
      this.n--;
      done(errno, data);
      this.wake();
    };
  }

  /** The limit may have grown (a policy change). */
  wake(): void {
    if (this.hasCapacity()) for (const l of [...this.listeners]) l();
  }
}
