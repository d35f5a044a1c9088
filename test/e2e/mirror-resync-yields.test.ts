// Resync yields to applications (issue 15): a 2-leg mirror whose leg 1 comes back with every region
// marked (its export engine stopped meanwhile); 4 KiB random writes at queue depth 16 for a fixed
// window, alternately with both legs in sync (no resync) and while leg 1 resyncs, 3 times each. The median IOPS during resync is at least
// half the median without, and every resync still finishes. Ratios only: absolute numbers move
// with the machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { blockContent } from '../helpers/blocks.js';
import { layoutDevice, startLegEngines, waitLegStates } from '../helpers/legs.js';
import type { NbdClient } from '../helpers/nbd-client.js';
import type { NodeShow } from '../../src/engine/types.js';

const M = 1024 * 1024;
const B = 4096;
const LEG = 160 * M;
const WINDOW_MS = 1500;
const QD = 16;

/** 4 KiB random writes at QD for WINDOW_MS over the first `bytes` of the device; IOPS. */
async function randwrite(nbd: NbdClient, bytes: number): Promise<number> {
  const blocks = bytes / B;
  let done = 0;
  let seed = 12345;
  const end = performance.now() + WINDOW_MS;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const block = seed % blocks;
      await nbd.write(block * B, blockContent(block, 1));
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: QD }, worker));
  return (done * 1000) / (performance.now() - t0);
}

/** Write the sparse leg files through once, so no window pays for the filesystem allocating blocks. */
function allocate(file: string): void {
  const fd = openSync(file, 'r+');
  const zeros = Buffer.alloc(4 * M);
  try {
    for (let at = 0; at < LEG; at += zeros.length) writeSync(fd, zeros, 0, zeros.length, at);
  } finally {
    closeSync(fd);
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

test('mirror: application IOPS during resync stay at least half of what they are without', { timeout: 120_000 }, async (t) => {
  const { engines, legs } = await startLegEngines(t, [LEG, LEG]);
  for (const l of legs) allocate(l.file);
  // a 1M floor, not the default 10M: what is measured is the controller, not how much of a shared
  // 2-vCPU machine 10 MiB/s of 1 MiB FUA copies take; the floor is shown (legs[].resync.rate ≥ it, below)
  const { nbd, rem, show } = await layoutDevice(t, legs, ['--layout', 'mirror'],
    ['--leg-timeout', '1s', '--reconnect-delay', '200ms', '--resync-min-rate', '1M']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  const size = show.size!;
  const region = show.region!;
  const without: number[] = [];
  const during: number[] = [];
  const rates: number[] = [];
  await randwrite(nbd, size); // warm-up (JIT, page cache), not counted
  for (let round = 0; round < 3; round++) {
    without.push(await randwrite(nbd, size));

    // leg 1 silent (its engine stopped, not restarted: a cold engine would be slower on its own)
    // while one block of every region is written: leg-timeout sends it behind, every region marked
    const pid = engines[1]!.pid;
    process.kill(pid, 'SIGSTOP');
    try {
      for (let at = 0; at < size; at += region) await nbd.write(at, blockContent(at / B, 2));
      const behind = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
      assert.ok(behind.legs![1]!.outOfSyncBytes >= size - region, `leg 1 misses ${behind.legs![1]!.outOfSyncBytes} bytes`);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitLegStates(rem, ['in-sync', 'resyncing'], 30_000);
    during.push(await randwrite(nbd, size));
    const after = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
    const r = after.legs![1]!.resync;
    assert.ok(r, `the resync was over before the window ended: ${JSON.stringify(after.legs![1])}`);
    rates.push(r.rate);
    assert.ok(r.rate >= show.policy.resyncMinRate, `rate ${r.rate} is never below the floor ${show.policy.resyncMinRate}`);

    // idle again: the resync finishes
    await waitLegStates(rem, ['in-sync', 'in-sync'], 30_000);
  }
  const ratio = median(during) / median(without);
  t.diagnostic(`randwrite 4K QD${QD} IOPS without resync ${without.map(Math.round).join(', ')}; during ${during.map(Math.round).join(', ')}; ratio ${ratio.toFixed(2)}; pace at window end ${rates.map((x) => (x / M).toFixed(0)).join(', ')} MiB/s`);
  assert.ok(ratio >= 0.5, `median IOPS during resync / without = ${ratio.toFixed(2)}`);
});
