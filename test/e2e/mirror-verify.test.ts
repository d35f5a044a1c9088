// Online verify: a block corrupted directly in one leg's backing file is found — exactly its
// region, on every pass — while a verified write load runs on other regions (no false positives:
// the region lock keeps in-flight writes out of the comparison); --repair needs --from with two
// legs, repairs the region from the named leg, and the next pass is clean.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync } from 'node:fs';
import { checkVersions, layoutDevice, sameBytes, startLegs, startWriteLoad, waitLegStates } from '../helpers/legs.js';
import type { Engine } from '../helpers/engine.js';
import type { NodeShow, VerifyReport } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const REGION = 256 * K;
const CORRUPT_AT = 5 * M + 8 * K; // region 20, outside the write load's first 2 MiB

async function verify(rem: Engine, ...args: string[]): Promise<{ code: number; report: VerifyReport | null; stderr: string }> {
  const r = await rem.dst(['node', 'verify', 'vol', ...args, '--json'], { timeoutMs: 120_000 });
  return { code: r.code, report: r.code <= 1 && r.stdout.trim() ? JSON.parse(r.stdout) as VerifyReport : null, stderr: r.stderr };
}

test('mirror verify finds exactly the corrupted region under load, repairs it with --from, then is clean', async (t) => {
  const { legs } = await startLegs(t, [12 * M, 12 * M]);
  const { nbd, rem, show } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  const load = startWriteLoad(nbd, (2 * M) / 4096);
  const fd = openSync(legs[1]!.file, 'r+');
  writeSync(fd, Buffer.from('not what leg 0 holds'), 0, undefined, CORRUPT_AT);
  closeSync(fd);

  const want = { offset: Math.floor(CORRUPT_AT / REGION) * REGION, length: REGION, legs: [0, 1] };
  for (let pass = 1; pass <= 3; pass++) {
    const { code, report } = await verify(rem);
    assert.equal(code, 1, `pass ${pass}: an unrepaired mismatch exits 1`);
    assert.equal(report!.regions, show.size! / REGION);
    assert.deepEqual(report!.mismatches, [want], `pass ${pass}: exactly the corrupted region`);
    assert.equal(report!.repaired, 0);
  }
  const seen = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  const { bytesPerSecond, ...last } = seen.verify!;
  assert.deepEqual(last, {
    running: false, doneBytes: show.size, totalBytes: show.size, mismatches: 1, repaired: 0, etaMs: null, mismatchList: [want], truncated: false,
  });
  assert.ok(bytesPerSecond > 0, 'the pass\'s rate');

  const guess = await verify(rem, '--repair');
  assert.equal(guess.code, 1);
  assert.match(guess.stderr, /--from/, 'two legs: which is right is not guessed');

  const fixed = await verify(rem, '--repair', '--from', '0');
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.deepEqual(fixed.report!.mismatches, [want]);
  assert.equal(fixed.report!.repaired, 1);
  const clean = await verify(rem);
  assert.equal(clean.code, 0, clean.stderr);
  assert.deepEqual(clean.report!.mismatches, []);

  assert.equal(await load.stop(), 0, 'no write failed during the passes');
  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, show.size!), 'both legs hold the same bytes');
  await checkVersions(nbd, load.versions);
});

test('node verify of a stripe is refused, naming the layout', async (t) => {
  const { legs } = await startLegs(t, [8 * M, 8 * M]);
  const { rem } = await layoutDevice(t, legs, ['--layout', 'stripe']);
  const r = await rem.dst(['node', 'verify', 'vol']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /stripe device; verify compares the legs of a mirror/);
  const u = await rem.dst(['node', 'verify', 'vol', '--from', '1']);
  assert.equal(u.code, 2, '--from without --repair is a usage error');
});
