// TRIM and WRITE_ZEROES on a mirror leave every leg reading the same: both reach every leg, and a
// leg that is away when they happen has their regions marked and copied back. The legs' backing
// files are compared byte for byte; the zeroed ranges read zeroes through NBD and on each leg.
// (While an export drops TRIM as a hint, "the same" means the old data on every leg; once TRIM
// frees space it means zeroes on every leg: the comparison holds either way.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { layoutDevice, readFileAt, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import { startProxy } from '../helpers/proxy.js';

const K = 1024;
const M = 1024 * K;
const BLOCKS = (2 * M) / 4096;

function assertZeroes(buf: Buffer, what: string): void {
  assert.ok(buf.equals(Buffer.alloc(buf.length)), `${what} reads zeroes`);
}

test('mirror TRIM and WRITE_ZEROES: every leg reads the same, also for a leg away when they happened', async (t) => {
  const { legs } = await startLegs(t, [12 * M, 12 * M]);
  const [addr, exportName] = legs[1]!.listen.split('/') as [string, string];
  const proxy = await startProxy(t, addr);
  const viaProxy = [legs[0]!, { ...legs[1]!, listen: `${proxy.listen}/${exportName}` }];
  const { nbd, rem, show } = await layoutDevice(t, viaProxy, ['--layout', 'mirror', '--region', '256K'],
    ['--leg-timeout', '1s', '--reconnect-delay', '200ms']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  const size = show.size!;
  for (let b = 0; b < BLOCKS; b++) await nbd.write(b * 4096, blockContent(b, 1));
  await nbd.flush();

  // both legs in sync
  await nbd.trim(256 * K, 256 * K);
  await nbd.writeZeroes(768 * K, 128 * K);
  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, size), 'legs identical after TRIM and WRITE_ZEROES');
  assertZeroes(await nbd.read(768 * K, 128 * K), 'the zeroed range through NBD');
  for (const l of legs) assertZeroes(readFileAt(l.file, 768 * K, 128 * K), `the zeroed range of ${l.file}`);

  // leg 1 away: the zeroes, the TRIM and a write it misses are copied back when it returns
  await proxy.ctl('refuse');
  await proxy.ctl('cut');
  await nbd.writeZeroes(M, 256 * K);
  await nbd.trim(1536 * K, 64 * K);
  await nbd.write(1792 * K, blockContent(448, 2));
  await waitLegStates(rem, ['in-sync', 'behind']);
  assertZeroes(readFileAt(legs[0]!.file, M, 256 * K), 'leg 0 zeroed while leg 1 was away');
  assert.equal(checkBlock(readFileAt(legs[1]!.file, M, 4096), 256).version, 1, 'leg 1 missed the zeroes');
  await proxy.ctl('accept');
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, size), 'legs identical after the resync');
  assertZeroes(readFileAt(legs[1]!.file, M, 256 * K), 'leg 1 got the zeroes it missed');
  assert.equal(checkBlock(await nbd.read(1792 * K, 4096), 448).version, 2);
  for (let b = 0; b < 64; b++) assert.equal(checkBlock(await nbd.read(b * 4096, 4096), b).version, 1, `block ${b} untouched`);
});
