// Checksum resync: a new mirror's initial sync compares region digests first and copies only the
// regions that differ — over blank (sparse) legs it copies nothing, with two regions of data on
// leg 0 exactly those two; every byte of leg 1 is compared either way, and the legs end identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { blockContent } from '../helpers/blocks.js';
import { layoutDevice, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';

const K = 1024;
const M = 1024 * K;
const REGION = 256 * K;

test('a new mirror copies only the regions whose digests differ', async (t) => {
  const { legs } = await startLegs(t, [12 * M, 12 * M]);
  const fd = openSync(legs[0]!.file, 'r+');
  for (const r of [3, 7]) writeSync(fd, blockContent(r * 64, 1), 0, 4096, r * REGION);
  closeSync(fd);
  const { rem, show } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K']);
  const synced = await waitLegStates(rem, ['in-sync', 'in-sync']);
  const leg1 = synced.legs![1]!.stats;
  assert.equal(leg1.comparedBytes, show.size, 'every byte of leg 1 compared');
  assert.equal(leg1.resyncedBytes, 2 * REGION, 'only the two regions with data copied');
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, show.size!), 'both legs hold the same bytes');
});
