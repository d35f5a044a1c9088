// Mirror reads: balanced over the legs in sync (each serves at least a quarter of them), and a
// verified random-read load across the death of either leg's export sees no error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { layoutDevice, startLegEngines, waitLegStates } from '../helpers/legs.js';
import type { NbdClient } from '../helpers/nbd-client.js';
import type { NodeShow } from '../../src/engine/types.js';

const M = 1024 * 1024;
const B = 4096;
const BLOCKS = (4 * M) / B;

/** Verified random reads by `concurrency` readers until stopped; the number that failed or read wrong. */
function readLoad(nbd: NbdClient, concurrency: number): { stop(): Promise<number>; reads(): number } {
  let stopped = false;
  let bad = 0;
  let n = 0;
  const reader = async (seed: number): Promise<void> => {
    let x = seed;
    while (!stopped) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const block = x % BLOCKS;
      try {
        const data = await nbd.read(block * B, B);
        if (checkBlock(data, block).version !== 1) bad++;
      } catch {
        bad++;
        return; // a dead connection fails every read at once: stop rather than spin
      }
      n++;
    }
  };
  const running = Array.from({ length: concurrency }, (_, i) => reader(i + 1));
  return { reads: () => n, async stop() { stopped = true; await Promise.all(running); return bad; } };
}

for (const victim of [0, 1]) {
  test(`mirror reads: balanced over both legs; leg ${victim} dying under verified reads costs no error`, async (t) => {
    const { engines, legs } = await startLegEngines(t, [12 * M, 12 * M]);
    const { nbd, rem } = await layoutDevice(t, legs, ['--layout', 'mirror'], ['--leg-timeout', '1s', '--reconnect-delay', '200ms']);
    await waitLegStates(rem, ['in-sync', 'in-sync']);
    for (let b = 0; b < BLOCKS; b += 64) {
      await nbd.write(b * B, Buffer.concat(Array.from({ length: 64 }, (_, i) => blockContent(b + i, 1))));
    }
    const before = (await rem.dstJson<NodeShow>(['node', 'show', 'vol'])).legs!.map((l) => l.stats.reads);
    const load = readLoad(nbd, 8);
    await new Promise((r) => setTimeout(r, 1000));
    const mid = (await rem.dstJson<NodeShow>(['node', 'show', 'vol'])).legs!.map((l) => l.stats.reads);
    const served = mid.map((m, i) => m - before[i]!);
    const total = served[0]! + served[1]!;
    assert.ok(total > 100, `${total} reads`);
    for (const [i, s] of served.entries()) assert.ok(s >= total / 4, `leg ${i} served ${s} of ${total} reads`);

    await engines[victim]!.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 2500));
    const atDeath = load.reads();
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(load.reads() > atDeath, 'reads go on with one leg');
    assert.equal(await load.stop(), 0, 'no read failed or read wrong data');
    const show = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
    assert.equal(show.state, 'ready');
    assert.equal(show.degraded, true);
  });
}
