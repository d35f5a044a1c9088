// Torn metadata: the newest metadata copy in one leg's tail overwritten with garbage while no
// engine runs. A fresh engine (no state-dir record: the legs decide) uses the other copy, loses
// nothing, logs the bad copy and rewrites it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { layoutDevice, readFileAt, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import { startEngine } from '../helpers/engine.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { decodeCopy, metaOffsets } from '../../src/engine/layout/leg-meta.js';
import type { NodeShow } from '../../src/engine/types.js';

const M = 1024 * 1024;

function copies(file: string): ReturnType<typeof decodeCopy>[] {
  return metaOffsets(statSync(file).size).map((at) => decodeCopy(readFileAt(file, at, 64 * 1024)));
}

test('a torn metadata copy: the other is used, nothing is lost, the bad one is rewritten', async (t) => {
  const { legs } = await startLegs(t, [12 * M, 12 * M]);
  const { nbd, rem } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  for (let b = 0; b < 8; b++) await nbd.write(b * 64 * 1024, blockContent(b * 16, 4));
  await nbd.flush();
  nbd.close();
  await rem.dstJson(['node', 'stop', 'vol']);

  const before = copies(legs[0]!.file);
  const seqs = before.map((c) => (c !== null && typeof c === 'object' ? c.seq : -1n));
  assert.ok(seqs.every((s) => s > 0n), 'both copies were written');
  const newest = seqs[0]! > seqs[1]! ? 0 : 1;
  const fd = openSync(legs[0]!.file, 'r+');
  writeSync(fd, randomBytes(8192), 0, 8192, metaOffsets(statSync(legs[0]!.file).size)[newest]);
  closeSync(fd);

  const fresh = await startEngine(t);
  await fresh.dstJson(['node', 'add', 'vol', '--layout', 'mirror', ...legs.flatMap((l) => ['--remote', l.listen])]);
  const show = await fresh.dstJson<NodeShow>(['node', 'start', 'vol', '--wait', '10s']);
  assert.equal(show.state, 'ready');
  await fresh.waitForLog(new RegExp(`leg 0 \\(\\S+\\): copy ${newest}: .*rewritten`));
  const synced = await waitLegStates(fresh, ['in-sync', 'in-sync']);
  assert.equal(synced.legs![0]!.stats.comparedBytes, 0, 'leg 0 is still known, not compared');
  const client = await NbdClient.connect(show.nbd!.socket);
  t.after(() => client.close());
  for (let b = 0; b < 8; b++) assert.equal(checkBlock(await client.read(b * 64 * 1024, 4096), b * 16).version, 4);
  await client.flush();
  const after = copies(legs[0]!.file);
  assert.ok(after.every((c) => c !== null && typeof c === 'object'), 'both copies valid again');
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, show.size!), 'legs identical');
});

test('a mirror over a leg of another mirror and a disk it does not list is refused naming it; --force-init initialises it', async (t) => {
  const { legs } = await startLegs(t, [12 * M, 12 * M, 12 * M]);
  const first = await layoutDevice(t, legs.slice(0, 2), ['--layout', 'mirror', '--region', '256K']);
  await waitLegStates(first.rem, ['in-sync', 'in-sync']);
  first.nbd.close();
  await first.rem.dstJson(['node', 'stop', 'vol']);

  const other = await startEngine(t);
  await other.dstJson(['node', 'add', 'vol2', '--layout', 'mirror', '--remote', legs[2]!.listen, '--remote', legs[1]!.listen]);
  const r = await other.dstFail(['node', 'start', 'vol2', '--wait', '5s'], 1);
  assert.match(r.stderr, /state failed \(reason device\)/);
  await other.waitForLog(/leg 0 \(\S+\) is not a member of mirror [0-9a-f]{32} \(its leg 0 is export [0-9a-f]{32}, this is [0-9a-f]{32}\).*--force-init/);
  const forced = await other.dstJson<NodeShow>(['node', 'start', 'vol2', '--force-init', '--wait', '10s']);
  assert.equal(forced.state, 'ready');
  const synced = await waitLegStates(other, ['in-sync', 'in-sync'], 30_000, 'vol2');
  assert.equal(synced.legs![0]!.stats.comparedBytes, synced.size, 'the forced leg compared every region');
});
