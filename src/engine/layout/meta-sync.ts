// Keeping the legs' metadata true while the mirror runs (issue 15):
// - every save of the mirror's state goes to every connected leg whose tail was read in this run
//   (FUA), and the save — so the write that asked for it — is acknowledged only once every in-sync
//   leg that took part has it: a new generation and an out-of-sync bit are on the in-sync legs
//   before any write the behind leg misses is acknowledged. An in-sync leg whose copy cannot be
//   written goes behind (the last in-sync leg's failure is the save's);
// - a leg reached for the first time after the assembly is not written to (data or metadata)
//   until its tail was read and judged against the live lineage (assemble.ts): a leg written
//   apart from this mirror is a split brain, not a leg to overwrite.
import type { Logger } from '../../util/log.js';
import { DstError } from '../../util/errors.js';
import { judgeLateLeg, type SplitBrain } from './assemble.js';
import type { LegIoHost } from './leg-io.js';
import { MetaReplica } from './leg-meta.js';
import type { RegionState } from './region-state.js';

export interface MetaSyncHost extends LegIoHost {
  readonly name: string;
  readonly log: Logger;
  legName(i: number): string;
  inSync(i: number): boolean;
  /** an in-sync leg's copy could not be written: it goes behind */
  copyFailed(i: number): void;
  /** leg i's tail says it holds unknown data: it compares every region */
  unknown(i: number): Promise<void>;
  refused(i: number, message: string): void;
  splitBrain(s: SplitBrain): void;
  isClosed(): boolean;
}

export class MetaSync {
  readonly replica: MetaReplica;
  private readonly checked: boolean[];
  /** a save went by while the leg was not connected: its copy is behind */
  private readonly stale: boolean[];
  private readonly checking = new Set<number>();
  private rs: RegionState | null = null;

  constructor(private readonly h: MetaSyncHost, replica: MetaReplica, legs: number, private readonly forceInit: boolean) {
    this.replica = replica;
    this.checked = new Array<boolean>(legs).fill(false);
    this.stale = new Array<boolean>(legs).fill(false);
  }

  /** The assembly read leg i's tail (the replica knows its copies). */
  markChecked(i: number): void {
    this.checked[i] = true;
  }

  attach(rs: RegionState): void {
    this.rs = rs;
  }

  /** The leg's tail has been read in this run: it may be written. */
  isChecked(i: number): boolean {
    return this.checked[i]!;
  }

  private connected(i: number): boolean {
    const leg = this.h.ports[i]!.leg;
    return leg.phase === 'ready' && leg.sizeBytes !== null;
  }

  /** RegionState's replicate: the encoded state to every checked, connected leg. */
  async replicate(body: Buffer): Promise<void> {
    const targets = this.h.ports.flatMap((_, i) => (this.checked[i] && this.connected(i) ? [i] : []));
    for (let i = 0; i < this.checked.length; i++) if (!targets.includes(i)) this.stale[i] = true;
    const results = await Promise.all(targets.map((i) => this.replica.write(this.h, i, this.h.ports[i]!.leg.sizeBytes!, body)));
    let inSyncOk = 0;
    let inSyncFailed = 0;
    targets.forEach((i, k) => {
      if (results[k]) {
        this.stale[i] = false;
        if (this.h.inSync(i)) inSyncOk++;
        return;
      }
      this.stale[i] = true;
      if (!this.h.inSync(i)) return;
      inSyncFailed++;
      this.h.log.warn(`${this.h.legName(i)}: its metadata copy could not be written; it goes behind`, { op: 'mirror-meta', leg: i, errno: 'EIO' });
      this.h.copyFailed(i);
    });
    if (inSyncFailed > 0 && inSyncOk === 0) {
      throw new DstError('DST_ERR_IO', `mirror ${this.h.name}: no in-sync leg took the metadata`, { errno: 'EIO' });
    }
  }

  /**
   * Leg i is connected: a leg not checked yet has its tail read and judged; a checked one whose
   * copy missed saves gets the current state. Resolves true once the leg may be used.
   */
  async legReady(i: number): Promise<boolean> {
    if (this.checked[i]) {
      if (this.stale[i] && this.rs) void this.rs.saveNow().catch(() => {});
      return true;
    }
    if (this.checking.has(i) || !this.rs) return false;
    this.checking.add(i);
    try {
      const found = await this.replica.read(this.h, i, this.h.ports[i]!.leg.sizeBytes!);
      if (this.h.isClosed() || found.kind === 'io-error') return false;
      const identity = this.h.ports[i]!.leg.identity;
      const v = judgeLateLeg(this.h.name, (k) => this.h.legName(k), i, this.h.ports.length, this.rs.lineage, found, this.forceInit, identity);
      if (v.kind === 'refuse') {
        this.h.refused(i, v.message);
        return false;
      }
      if (v.kind === 'split-brain') {
        this.h.splitBrain(v);
        return false;
      }
      if (found.kind === 'meta' && found.bad) this.h.log.warn(`${this.h.legName(i)}: ${found.bad}; it is rewritten`, { op: 'mirror-meta', leg: i });
      this.checked[i] = true;
      if (identity) this.rs.setMember(i, identity);
      if (v.kind === 'compare') {
        this.h.log.warn(v.note, { op: 'mirror-meta', leg: i });
        await this.h.unknown(i);
      } else await this.rs.saveNow();
      return true;
    } finally {
      this.checking.delete(i);
    }
  }
}
