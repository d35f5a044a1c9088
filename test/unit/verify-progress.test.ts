// A verify pass says how far it is and when it will be done (layout/verify.ts): node show's verify
// and the verify-progress events carry the pass's rate so far and the time left at it, and node
// show keeps the pass's first mismatching regions (bounded, with `truncated`) once it is over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_SHOWN_MISMATCHES } from '../../src/engine/layout/verify.js';
import type { VerifyReport, VerifyShow } from '../../src/engine/types.js';
import { VERIFY_REGION as REGION, settle, verifyFixture } from '../helpers/verify-legs.js';

const REGIONS = 100;
const BAD = 70; // more than node show keeps
const DIGEST_MS = 100; // each digest answers 100 ms (fake) later: 4 pieces a region, 400 ms per region

/** within 10 % */
const near = (x: number, want: number): boolean => Math.abs(x - want) <= want / 10;

test('verify: rate and ETA while the pass runs, the first mismatches kept once it is over', async () => {
  const f = verifyFixture(3, 0, { size: REGIONS * REGION, digestDelayMs: DIGEST_MS });
  for (let r = 0; r < BAD; r++) f.disks[2]![r * REGION + 7] = 1;
  const pass: { report: VerifyReport | null } = { report: null };
  void f.verifier.run({ repair: false, from: null }).then((x) => { pass.report = x; });

  let mid: VerifyShow | null = null;
  for (let step = 0; pass.report === null; step++) {
    assert.ok(step < 10_000, 'the pass ends');
    f.clock.advance(DIGEST_MS);
    await settle();
    if (step === 100) mid = f.verifier.show();
  }
  // 10 s in: about 25 regions of 64 KiB done (160 KiB/s), about 30 s left
  assert.ok(mid!.running);
  assert.ok(near(mid!.bytesPerSecond, REGION * 2.5), `rate ${mid!.bytesPerSecond}`);
  assert.equal(mid!.etaMs, Math.round(((mid!.totalBytes - mid!.doneBytes) * 1000) / mid!.bytesPerSecond));
  assert.ok(near(mid!.etaMs, 30_000), `eta ${mid!.etaMs}`);

  const progress = f.events.filter((e) => e.event === 'verify-progress').map((e) => e.fields);
  assert.ok(progress.length >= 30, `${progress.length} progress events`);
  for (const p of progress) {
    assert.ok(near(p.bytesPerSecond!, REGION * 2.5), `rate ${p.bytesPerSecond}`);
    assert.equal(p.etaMs, Math.round(((p.totalBytes! - p.doneBytes!) * 1000) / p.bytesPerSecond!));
  }
  assert.ok(progress.every((p, k) => k === 0 || p.etaMs! < progress[k - 1]!.etaMs!), 'the ETA counts down');

  const done = f.verifier.show()!;
  assert.equal(done.running, false);
  assert.equal(done.etaMs, null, 'nothing left');
  assert.equal(done.mismatches, BAD);
  assert.equal(done.truncated, true);
  assert.equal(done.mismatchList.length, MAX_SHOWN_MISMATCHES);
  assert.deepEqual(done.mismatchList, Array.from({ length: MAX_SHOWN_MISMATCHES }, (_, r) => ({ offset: r * REGION, length: REGION, legs: [2] })));
  assert.equal(pass.report!.mismatches.length, BAD, 'the command still lists them all');
});
