// A two-leg mirror under verified write load loses leg 1 (its export engine SIGKILLed): writes go
// on after at most leg-timeout with no error, the node is degraded with leg 1 behind and its
// missed bytes counted; leg 1's engine comes back, resync copies only what it missed, and then
// both legs' backing files are byte-identical and every block reads back its newest version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkVersions, layoutDevice, sameBytes, startLegEngines, startWriteLoad, waitLegStates } from '../helpers/legs.js';
import type { NodeShow } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const B = 4096;
const REGION = 256 * K;
/** the writers touch the first 4 MiB only, so a leg can miss at most that much */
const HOT_BLOCKS = (4 * M) / B;

test('mirror: a leg killed mid-write costs no I/O error; back, it resyncs only what it missed', async (t) => {
  const { engines, legs } = await startLegEngines(t, [36 * M, 36 * M]);
  const { show, nbd, rem } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K'],
    ['--leg-timeout', '1s', '--reconnect-delay', '200ms']);
  assert.equal(show.layout, 'mirror');
  assert.equal(show.size, 32 * M, 'the smallest leg minus the 4 MiB reserved tail');
  // a new mirror: leg 1 is brought in line from leg 0 first
  const synced = await waitLegStates(rem, ['in-sync', 'in-sync']);
  assert.equal(synced.degraded, false);
  // blank legs: the checksum initial sync compares every byte and copies none
  assert.equal(synced.legs![1]!.stats.comparedBytes, 32 * M);
  const initialCopy = synced.legs![1]!.stats.resyncedBytes;
  assert.equal(initialCopy, 0);

  const load = startWriteLoad(nbd, HOT_BLOCKS);
  await new Promise((r) => setTimeout(r, 500));
  await engines[1]!.kill('SIGKILL');
  const killedAt = load.issued();
  await new Promise((r) => setTimeout(r, 2500));
  assert.ok(load.issued() > killedAt + 100, `writes went on after the kill (${load.issued() - killedAt} more)`);
  const away = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(await load.stop(), 0, 'no write failed');
  assert.equal(away.state, 'ready');
  assert.equal(away.degraded, true);
  assert.equal(away.legs![1]!.state, 'behind');
  const missed = away.legs![1]!.outOfSyncBytes;
  assert.ok(missed > 0 && missed <= 4 * M, `leg 1 missed ${missed} bytes`);

  await engines[1]!.restart();
  const back = await waitLegStates(rem, ['in-sync', 'in-sync'], 60_000);
  assert.equal(back.degraded, false);
  const copied = back.legs![1]!.stats.resyncedBytes - initialCopy;
  const missedAtEnd = 4 * M; // every hot region, at most
  assert.ok(copied > 0 && copied <= missedAtEnd + REGION, `resync copied ${copied} bytes, leg 1 missed at most ${missedAtEnd}`);
  t.diagnostic(`missed ${missed} bytes when shown, resync copied ${copied} bytes of a ${32 * M}-byte device`);

  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, 32 * M), 'both legs hold the same bytes');
  await checkVersions(nbd, load.versions);
});
