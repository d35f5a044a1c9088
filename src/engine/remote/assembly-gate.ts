// When a mirror may assemble (issue 15): without a state-dir record the legs' metadata is all
// there is, and a leg away may hold the newest data (assembling from a subset is how md lets an
// old leg overwrite new ones): it waits for every leg unless `node start --degraded`.
import type { Logger } from '../../util/log.js';
import { loadMirrorRecord } from '../layout/open-mirror.js';
import type { StartOptions } from '../types.js';
import type { Leg } from './leg.js';

export class AssemblyGate {
  /** whether the state dir has a record (null: not read yet) */
  private hasRecord: boolean | null = null;
  /** no record, a leg away, no --degraded: the node waits for it */
  waiting = false;
  /** the legs were put in their metadata's order in this start (once: a second time is a failure) */
  reordered = false;

  /** `opts`: this start's one-shot options */
  constructor(public opts: StartOptions = {}) {}

  /** A second start with --degraded while waiting: true when it changes anything. */
  degrade(): boolean {
    if (!this.waiting) return false;
    this.opts = { ...this.opts, degraded: true };
    return true;
  }

  async mayAssemble(legs: readonly Leg[], stateDir: string, name: string, log: Logger): Promise<boolean> {
    this.hasRecord ??= (await loadMirrorRecord(stateDir, name, log)) !== null;
    const away = legs.flatMap((l, i) => (l.phase === 'ready' || l.phase === 'failed' ? [] : [i]));
    if (this.hasRecord || this.opts.degraded || away.length === 0) {
      this.waiting = false;
      return true;
    }
    if (!this.waiting) {
      this.waiting = true;
      log.warn(`no state-dir record of the mirror: waiting for every leg's metadata (leg${away.length > 1 ? 's' : ''} ${away.join(', ')} away); `
        + `\`dst node start ${name} --degraded\` assembles from the legs reached`, { op: 'start' });
    }
    return false;
  }
}
