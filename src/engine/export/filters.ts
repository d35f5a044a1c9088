// Backend filters (style.md §1 rule 5: fault injection is a feature, not a mock). A filter has
// the Backend interface and holds only `next`. Test switches read from the environment at node
// creation select them (testSwitchesFromEnv).
import type { Clock, TimerHandle } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import { DstError } from '../../util/errors.js';
import type { Backend, Extent } from './backend.js';

function shutdownError(what: string): NodeJS.ErrnoException {
  const err = new Error(`ESHUTDOWN: ${what}`) as NodeJS.ErrnoException;
  err.code = 'ESHUTDOWN';
  return err;
}

/** Base: passes everything to `next`. */
export class PassFilter implements Backend {
  constructor(protected readonly next: Backend) {}
  read(offset: number, length: number): Promise<Buffer> { return this.next.read(offset, length); }
  write(offset: number, data: Buffer, fua: boolean): Promise<void> { return this.next.write(offset, data, fua); }
  flush(): Promise<void> { return this.next.flush(); }
  trim(offset: number, length: number, fua: boolean): Promise<void> { return this.next.trim(offset, length, fua); }
  writeZeroes(offset: number, length: number, fua: boolean, flags: number): Promise<void> { return this.next.writeZeroes(offset, length, fua, flags); }
  extents(offset: number, length: number): Promise<Extent[]> { return this.next.extents(offset, length); }
  fastZero(): boolean { return this.next.fastZero(); }
  close(): Promise<void> { return this.next.close(); }
}

/** Timers that close() cancels, failing their waiters with ESHUTDOWN. */
class Sleeper {
  private pending = new Set<{ timer: TimerHandle; reject: (err: Error) => void }>();
  private closed = false;
  constructor(private readonly clock: Clock) {}
  sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.reject(shutdownError('backend closed'));
    return new Promise<void>((resolve, reject) => {
      const entry = {
        timer: this.clock.setTimer(ms, () => { this.pending.delete(entry); resolve(); }),
        reject,
      };
      this.pending.add(entry);
    });
  }
  close(): void {
    this.closed = true;
    for (const p of this.pending) {
      p.timer.cancel();
      p.reject(shutdownError('backend closed while a call was held'));
    }
    this.pending.clear();
  }
}

/**
 * Hold the FIRST write at `offset` for `ms` before executing it (DST_TEST_HOLD_WRITE). Used to
 * show that fencing keeps a stale write from landing after a newer one. Logs
 * "held write executed" and counts it once it has landed.
 */
export class HoldWriteFilter extends PassFilter {
  private armed = true;
  /** held writes that reached the disk */
  executed = 0;
  private readonly sleeper: Sleeper;

  constructor(next: Backend, private readonly offset: number, private readonly ms: number, clock: Clock,
    private readonly log: Logger) {
    super(next);
    this.sleeper = new Sleeper(clock);
  }

  override async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    if (!(this.armed && offset === this.offset)) return this.next.write(offset, data, fua);
    this.armed = false;
    this.log.info('holding write', { op: 'write', offset, ms: this.ms });
    await this.sleeper.sleep(this.ms);
    await this.next.write(offset, data, fua);
    this.executed++;
    this.log.info('held write executed', { op: 'write', offset });
  }

  override close(): Promise<void> {
    this.sleeper.close();
    return this.next.close();
  }
}

export type FilterOp = 'read' | 'write' | 'flush' | 'trim' | 'write-zeroes' | 'extents';

/** Delay every matching call by `ms` (all ops when `ops` is null). */
export class DelayFilter extends PassFilter {
  private readonly sleeper: Sleeper;
  constructor(next: Backend, private readonly ms: number, clock: Clock, private readonly ops: FilterOp[] | null = null) {
    super(next);
    this.sleeper = new Sleeper(clock);
  }
  private async gate(op: FilterOp): Promise<void> {
    if (this.ops === null || this.ops.includes(op)) await this.sleeper.sleep(this.ms);
  }
  override async read(offset: number, length: number): Promise<Buffer> { await this.gate('read'); return this.next.read(offset, length); }
  override async write(offset: number, data: Buffer, fua: boolean): Promise<void> { await this.gate('write'); return this.next.write(offset, data, fua); }
  override async flush(): Promise<void> { await this.gate('flush'); return this.next.flush(); }
  override async trim(offset: number, length: number, fua: boolean): Promise<void> { await this.gate('trim'); return this.next.trim(offset, length, fua); }
  override async writeZeroes(offset: number, length: number, fua: boolean, flags: number): Promise<void> { await this.gate('write-zeroes'); return this.next.writeZeroes(offset, length, fua, flags); }
  override async extents(offset: number, length: number): Promise<Extent[]> { await this.gate('extents'); return this.next.extents(offset, length); }
  override close(): Promise<void> { this.sleeper.close(); return this.next.close(); }
}

/** Fail matching calls with `errno` (like nbdkit's error filter); `count` = how many (Infinity = all). */
export class ErrorFilter extends PassFilter {
  failed = 0;
  constructor(next: Backend, private readonly errno: string, private readonly ops: FilterOp[] | null = null,
    private count = Infinity) {
    super(next);
  }
  private check(op: FilterOp): void {
    if (this.count > 0 && (this.ops === null || this.ops.includes(op))) {
      this.count--;
      this.failed++;
      const err = new Error(`${this.errno}: injected by the error filter (${op})`) as NodeJS.ErrnoException;
      err.code = this.errno;
      throw err;
    }
  }
  override async read(offset: number, length: number): Promise<Buffer> { this.check('read'); return this.next.read(offset, length); }
  override async write(offset: number, data: Buffer, fua: boolean): Promise<void> { this.check('write'); return this.next.write(offset, data, fua); }
  override async flush(): Promise<void> { this.check('flush'); return this.next.flush(); }
  override async trim(offset: number, length: number, fua: boolean): Promise<void> { this.check('trim'); return this.next.trim(offset, length, fua); }
  override async writeZeroes(offset: number, length: number, fua: boolean, flags: number): Promise<void> { this.check('write-zeroes'); return this.next.writeZeroes(offset, length, fua, flags); }
  override async extents(offset: number, length: number): Promise<Extent[]> { this.check('extents'); return this.next.extents(offset, length); }
}

// ---- test switches (read once, at node creation) ----

export interface TestSwitches {
  /** DST_TEST_NO_FENCING=1: no fencing, no waiting, no dedup (to show the revert it prevents) */
  noFencing: boolean;
  /** DST_TEST_HOLD_WRITE="<offset>:<ms>" */
  holdWrite: { offset: number; ms: number } | null;
}

export function parseHoldSpec(text: string): { offset: number; ms: number } {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(text);
  if (!m) throw new DstError('DST_ERR_INVALID', `invalid DST_TEST_HOLD_WRITE ${JSON.stringify(text)}: expected <offset>:<ms>`);
  return { offset: Number(m[1]), ms: Number(m[2]) };
}

export function testSwitchesFromEnv(env: NodeJS.ProcessEnv = process.env): TestSwitches {
  const hold = env.DST_TEST_HOLD_WRITE;
  return {
    noFencing: env.DST_TEST_NO_FENCING === '1',
    holdWrite: hold ? parseHoldSpec(hold) : null,
  };
}
