// verify-interval (layout/verify.ts): a report-only pass starts one interval after the last pass
// ended, without any `node verify`; it finds a corrupted region and never repairs it; a policy
// change re-arms it (only when verify-interval itself changed), 0 and close() turn it off, and a
// mirror that cannot compare (one in-sync leg) is tried again an interval later.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VERIFY_REGION, VERIFY_SIZE, verifyFixture as fixture, settle } from '../helpers/verify-legs.js';

const REGION = VERIFY_REGION;
const SIZE = VERIFY_SIZE;
const MINUTE = 60_000;

test('verify-interval: a scheduled pass finds a corrupted region, reports it, never repairs it', async () => {
  const f = fixture();
  f.disks[1]!.write('not what leg 0 holds', 3 * REGION + 100);
  const corrupt = Buffer.from(f.disks[1]!);

  f.clock.advance(MINUTE - 1);
  await settle();
  assert.equal(f.passes().length, 0, 'nothing before the interval');
  assert.equal(f.verifier.show(), null);

  f.clock.advance(1);
  await settle();
  assert.deepEqual(f.passes().map((e) => e.fields), [{ regions: 8, mismatches: 1, repaired: 0, ms: 0 }]);
  assert.deepEqual(f.verifier.show(), {
    running: false, doneBytes: SIZE, totalBytes: SIZE, mismatches: 1, repaired: 0, bytesPerSecond: SIZE * 1000, etaMs: null,
    mismatchList: [{ offset: 3 * REGION, length: REGION, legs: [0, 1] }], truncated: false,
  });
  assert.ok(f.logs.some((l) => /warn verify: verify: region at offset 196608 \(65536 bytes\) differs on leg 0, 1/.test(l)), f.logs.join('\n'));
  assert.ok(f.logs.some((l) => /scheduled verify done: 8 regions, 1 mismatching, 0 repaired/.test(l)), f.logs.join('\n'));
  assert.ok(f.disks[1]!.equals(corrupt), 'a scheduled pass only reports');

  // the next one an interval after this one ended, and so on
  f.clock.advance(MINUTE - 1);
  await settle();
  assert.equal(f.passes().length, 1);
  f.clock.advance(1);
  await settle();
  assert.equal(f.passes().length, 2);
  f.close();
  assert.equal(f.clock.pending(), 0, 'close cancels the schedule');
  f.clock.advance(10 * MINUTE);
  await settle();
  assert.equal(f.passes().length, 2);
});

test('verify-interval: off by default; set, changed and turned off through policyChanged', async () => {
  const f = fixture(2, 0);
  f.clock.advance(10 * MINUTE);
  await settle();
  assert.equal(f.passes().length, 0, 'default 0: no scheduled pass');
  assert.equal(f.clock.pending(), 0);

  f.setPolicy({ verifyIntervalMs: MINUTE });
  f.clock.advance(MINUTE / 2);
  f.setPolicy({ maxInflight: 32 }); // another key: the schedule stays where it was
  f.clock.advance(MINUTE / 2);
  await settle();
  assert.equal(f.passes().length, 1, 'one interval after verify-interval was set');

  f.clock.advance(MINUTE / 2);
  f.setPolicy({ verifyIntervalMs: 2 * MINUTE }); // counts from now
  f.clock.advance(2 * MINUTE - 1);
  await settle();
  assert.equal(f.passes().length, 1);
  f.clock.advance(1);
  await settle();
  assert.equal(f.passes().length, 2);

  f.setPolicy({ verifyIntervalMs: 0 });
  assert.equal(f.clock.pending(), 0, '0 turns it off');
  f.clock.advance(10 * MINUTE);
  await settle();
  assert.equal(f.passes().length, 2);
});

test('verify-interval: a manual pass moves the schedule; a mirror that cannot compare is tried an interval later', async () => {
  const f = fixture();
  f.clock.advance(MINUTE / 2);
  await f.verifier.run({ repair: false, from: null });
  assert.equal(f.passes().length, 1);
  f.clock.advance(MINUTE - 1);
  await settle();
  assert.equal(f.passes().length, 1, 'the interval counts from the end of the manual pass');

  f.setInSync([0]); // one leg in sync: nothing to compare with
  f.clock.advance(1);
  await settle();
  assert.equal(f.passes().length, 1);
  assert.ok(f.logs.some((l) => /scheduled verify skipped: node verify: needs two connected in-sync legs/.test(l)), f.logs.join('\n'));
  assert.equal(f.verifier.show()!.running, false);

  f.setInSync([0, 1]);
  f.clock.advance(MINUTE);
  await settle();
  assert.equal(f.passes().length, 2, 'tried again an interval later');
  f.close();
});
