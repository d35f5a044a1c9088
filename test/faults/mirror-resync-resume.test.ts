// A resync cut at about half way (the leg's export killed again) resumes from the bitmap when the
// leg is back: the bytes copied in all stay within what the leg missed plus one region per
// interruption, never a second full pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent } from '../helpers/blocks.js';
import { checkVersions, layoutDevice, sameBytes, startLegEngines, waitLegStates } from '../helpers/legs.js';
import type { NodeShow } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const REGION = 256 * K;
const B = 4096;

test('mirror: an interrupted resync resumes without starting over', async (t) => {
  const { engines, legs } = await startLegEngines(t, [36 * M, 36 * M]);
  const { nbd, rem } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K'],
    ['--leg-timeout', '1s', '--reconnect-delay', '200ms']);
  const synced = await waitLegStates(rem, ['in-sync', 'in-sync']);
  const initial = synced.legs![1]!.stats.resyncedBytes;

  // leg 1 away while 16 MiB are written: 64 regions out of sync
  await engines[1]!.kill('SIGKILL');
  const versions = new Map<number, number>();
  for (let at = 0; at < 16 * M; at += M) {
    await nbd.write(at, Buffer.concat(Array.from({ length: M / B }, (_, i) => blockContent(at / B + i, 3))));
    for (let i = 0; i < M / B; i++) versions.set(at / B + i, 3);
  }
  const behind = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  const missed = behind.legs![1]!.outOfSyncBytes;
  assert.equal(missed, 16 * M);

  // slow the copy so it can be cut half way
  await rem.dstJson(['node', 'set', 'vol', '--resync-rate', '4M']);
  await engines[1]!.restart();
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
    const r = s.legs![1]!.resync;
    if (r && r.doneBytes >= missed / 2) {
      assert.equal(r.totalBytes, missed);
      assert.ok(r.bytesPerSecond > 0);
      break;
    }
    assert.ok(Date.now() < deadline, `resync did not reach half way: ${JSON.stringify(s.legs![1])}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  await engines[1]!.kill('SIGKILL');
  const cut = await waitLegStates(rem, ['in-sync', 'behind']);
  const left = cut.legs![1]!.outOfSyncBytes;
  assert.ok(left < missed && left > 0, `${left} of ${missed} bytes left after the cut`);

  await rem.dstJson(['node', 'set', 'vol', '--resync-rate', '0']);
  await engines[1]!.restart();
  const done = await waitLegStates(rem, ['in-sync', 'in-sync'], 60_000);
  const copied = done.legs![1]!.stats.resyncedBytes - initial;
  assert.ok(copied <= missed + 2 * REGION, `copied ${copied} bytes for ${missed} missed (one interruption)`);
  t.diagnostic(`missed ${missed} bytes, copied ${copied} across one interruption`);
  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, done.size!), 'legs identical');
  await checkVersions(nbd, versions);
});
