// Verify of a three-leg mirror: --repair without --from repairs a region from the digest most legs
// agree on (the legs are identical after, the next pass is clean); a region where all three legs
// differ has no majority: it is reported, not repaired, until --from names the leg to copy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync } from 'node:fs';
import { blockContent } from '../helpers/blocks.js';
import { layoutDevice, readFileAt, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import type { Engine } from '../helpers/engine.js';
import type { VerifyReport } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const REGION = 256 * K;
const ONE_WRONG = 5 * M + 8 * K; // region 20: leg 2 alone differs
const ALL_DIFFER = 7 * M + 4 * K; // region 28: each leg holds something else

function corrupt(file: string, at: number, text: string): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.from(text), 0, undefined, at);
  closeSync(fd);
}

async function verify(rem: Engine, ...args: string[]): Promise<{ code: number; report: VerifyReport; stderr: string }> {
  const r = await rem.dst(['node', 'verify', 'vol', ...args, '--json'], { timeoutMs: 120_000 });
  assert.ok(r.code <= 1 && r.stdout.trim(), `node verify ${args.join(' ')}: code ${r.code}: ${r.stderr}`);
  return { code: r.code, report: JSON.parse(r.stdout) as VerifyReport, stderr: r.stderr };
}

const regionOf = (at: number): number => Math.floor(at / REGION) * REGION;

test('mirror of three: --repair follows the majority; a region with none needs --from', async (t) => {
  const { legs } = await startLegs(t, [12 * M, 12 * M, 12 * M]);
  const { nbd, rem, show } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K']);
  await waitLegStates(rem, ['in-sync', 'in-sync', 'in-sync']);
  for (const at of [regionOf(ONE_WRONG), regionOf(ALL_DIFFER)]) await nbd.write(at, blockContent(at / 4096, 1));
  await nbd.flush();
  const size = show.size!;
  const [a, b, c] = legs.map((l) => l.file) as [string, string, string];

  corrupt(c, ONE_WRONG, 'only leg 2 holds this');
  const fixed = await verify(rem, '--repair');
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.deepEqual(fixed.report.mismatches, [{ offset: regionOf(ONE_WRONG), length: REGION, legs: [2] }], 'the leg outside the majority');
  assert.equal(fixed.report.repaired, 1);
  assert.ok(sameBytes(a, c, size) && sameBytes(b, c, size), 'the three legs hold the same bytes');
  await rem.waitForLog(/verify: repaired region at offset 5242880 on leg 2 from leg 0/);
  const clean = await verify(rem);
  assert.equal(clean.code, 0, clean.stderr);
  assert.deepEqual(clean.report.mismatches, []);

  corrupt(a, ALL_DIFFER, 'leg 0 holds this');
  corrupt(b, ALL_DIFFER, 'leg 1 holds that');
  const before = legs.map((l) => readFileAt(l.file, regionOf(ALL_DIFFER), REGION));
  const want = [{ offset: regionOf(ALL_DIFFER), length: REGION, legs: [0, 1, 2] }];
  const refused = await verify(rem, '--repair');
  assert.equal(refused.code, 1, 'an unrepaired mismatch exits 1');
  assert.deepEqual(refused.report.mismatches, want, 'no majority: every compared leg');
  assert.equal(refused.report.repaired, 0);
  await rem.waitForLog(/verify: region at offset 7340032: no digest has a majority; repair it with --from LEG/);
  legs.forEach((l, i) => assert.ok(readFileAt(l.file, regionOf(ALL_DIFFER), REGION).equals(before[i]!), `leg ${i} untouched`));

  const chosen = await verify(rem, '--repair', '--from', '2');
  assert.equal(chosen.code, 0, chosen.stderr);
  assert.deepEqual(chosen.report.mismatches, want);
  assert.equal(chosen.report.repaired, 1);
  assert.ok(readFileAt(a, regionOf(ALL_DIFFER), REGION).equals(before[2]!), 'leg 0 now holds what leg 2 held');
  assert.ok(sameBytes(a, c, size) && sameBytes(b, c, size), 'the three legs hold the same bytes');
  const last = await verify(rem);
  assert.equal(last.code, 0, last.stderr);
  assert.deepEqual(last.report.mismatches, []);
});
