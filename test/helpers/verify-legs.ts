// In-memory mirror legs behind a Verifier (layout/verify.ts) on a FakeClock: each leg a buffer
// answering DIGEST, READ and WRITE at once (or its digests after digestDelayMs of fake time).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FakeClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { DEFAULT_POLICY, type EventFields, type EventName, type Policy } from '../../src/engine/types.js';
import { Verifier, type VerifyHost } from '../../src/engine/layout/verify.js';
import { RangeLock } from '../../src/engine/layout/range-lock.js';
import type { LegPort } from '../../src/engine/layout/leg-port.js';
import type { LegRequest, BlockDone } from '../../src/engine/remote/target.js';

const K = 1024;
export const VERIFY_REGION = 64 * K;
export const VERIFY_SIZE = 8 * VERIFY_REGION;

/** Two (or more) in-memory legs answering DIGEST and READ/WRITE at once, behind a Verifier. */
export function verifyFixture(legCount = 2, intervalMs = 60_000, o: { size?: number; digestDelayMs?: number } = {}) {
  const size = o.size ?? VERIFY_SIZE;
  const clock = new FakeClock();
  const disks = Array.from({ length: legCount }, () => Buffer.alloc(size));
  const events: { event: EventName; fields: EventFields }[] = [];
  const logs: string[] = [];
  let policy: Policy = { ...DEFAULT_POLICY, verifyIntervalMs: intervalMs };
  let inSync = disks.map((_, i) => i);
  let closed = false;
  const ports = disks.map((disk) => ({
    leg: { digests: true, maxRequest: () => 16 * K },
    send(req: LegRequest, done: BlockDone): void {
      const at = req.offset;
      if (req.op === 'digest') {
        const sum = createHash('sha256').update(disk.subarray(at, at + req.length)).digest();
        if (o.digestDelayMs) clock.setTimer(o.digestDelayMs, () => done(null, sum));
        else done(null, sum);
      } else if (req.op === 'read') done(null, Buffer.from(disk.subarray(at, at + req.length)));
      else { req.payload!.copy(disk, at); done(null, null); }
    },
  })) as unknown as LegPort[];
  const host: VerifyHost = {
    ports, clock, lock: new RangeLock(), size, regionSize: VERIFY_REGION,
    log: createLogger('debug', 'text', (l) => logs.push(l)),
    policy: () => policy,
    legTimedOut: () => assert.fail('no leg times out here'),
    emit: (event, fields) => events.push({ event, fields }),
    inSyncReady: () => inSync,
    isClosed: () => closed,
  };
  const verifier = new Verifier(host);
  return {
    clock, disks, events, logs, verifier,
    setPolicy(p: Partial<Policy>) { policy = { ...policy, ...p }; verifier.policyChanged(); },
    setInSync(legs: number[]) { inSync = legs; },
    close() { closed = true; verifier.close(); },
    passes: () => events.filter((e) => e.event === 'verify-done'),
  };
}

/** Let a pass that the clock started run to its end (the fake legs answer at once). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

