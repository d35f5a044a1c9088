// verify-interval on real engines: a block corrupted directly in one leg's backing file is found by
// a scheduled pass — no `node verify` is ever run — reported in node show's verify (which lists
// the region: offset, length and legs in bytes of the device), the verify-done event and the log,
// and left as it is (a scheduled pass never repairs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync } from 'node:fs';
import { layoutDevice, readFileAt, startLegs, waitLegStates } from '../helpers/legs.js';
import type { Engine } from '../helpers/engine.js';
import type { NodeShow } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const CORRUPT_AT = 3 * M + 4 * K; // region 12 of the 6 MiB device (10 MiB legs less the reserved tail)
const JUNK = Buffer.from('not what leg 0 holds');

/** node show once no pass is running (the schedule starts one every 300 ms). */
async function settled(rem: Engine): Promise<NodeShow> {
  for (;;) {
    const seen = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
    if (!seen.verify!.running) return seen;
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('mirror verify-interval: a scheduled pass finds a corrupted block without node verify, and does not repair it', async (t) => {
  const { legs } = await startLegs(t, [10 * M, 10 * M]);
  const { rem, show } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K'], ['--verify-interval', '300ms']);
  assert.equal(show.policy.verifyIntervalMs, 300);
  assert.equal(show.size, 6 * M);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  const events = await rem.events({ node: 'vol' });
  t.after(() => events.close());
  const fd = openSync(legs[1]!.file, 'r+');
  writeSync(fd, JUNK, 0, undefined, CORRUPT_AT);
  closeSync(fd);

  const done = await events.waitFor((r) => r.event === 'verify-done' && (r.mismatches ?? 0) > 0, 30_000, 'a scheduled verify-done with a mismatch');
  assert.equal(done.mismatches, 1);
  assert.equal(done.repaired, 0);
  const { bytesPerSecond, ...last } = (await settled(rem)).verify!;
  assert.deepEqual(last, {
    running: false, doneBytes: show.size, totalBytes: show.size, mismatches: 1, repaired: 0, etaMs: null,
    mismatchList: [{ offset: 3 * M, length: 256 * K, legs: [0, 1] }], truncated: false,
  }, 'node show names the region, not only the log');
  assert.ok(bytesPerSecond > 0);
  await rem.waitForLog(/verify: region at offset 3145728 \(262144 bytes\) differs on leg 0, 1/);
  await rem.waitForLog(/scheduled verify done: 24 regions, 1 mismatching, 0 repaired/);
  assert.ok(readFileAt(legs[1]!.file, CORRUPT_AT, JUNK.length).equals(JUNK), 'a scheduled pass only reports');

  // off again: no pass starts after the one running now ends
  await rem.dstJson(['node', 'set', 'vol', '--verify-interval', '0']);
  await settled(rem);
  const text = await rem.dst(['node', 'show', 'vol']);
  assert.match(text.stdout, /verify +last pass complete: 1 mismatching, 0 repaired; at 3M \(256K, leg 0, 1\)$/m);
  const quiet = events.records.filter((r) => r.event === 'verify-done').length;
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(events.records.filter((r) => r.event === 'verify-done').length, quiet, 'verify-interval 0 stops the schedule');
});
