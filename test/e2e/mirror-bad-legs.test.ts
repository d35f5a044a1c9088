// Mirror legs that do not fit: legs of different sizes give the smallest size and a warning
// naming the larger leg; a leg that reconnects to another disk (another identity) is failed —
// never written — while the device keeps serving from the other leg.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { layoutDevice, readFileAt, startLegs, waitLegStates } from '../helpers/legs.js';

const M = 1024 * 1024;

test('mirror of unequal legs: the smallest minus the reserved tail, a warning names the larger leg', async (t) => {
  const { legs } = await startLegs(t, [20 * M, 24 * M]);
  const { show, rem } = await layoutDevice(t, legs, ['--layout', 'mirror']);
  assert.equal(show.size, 16 * M);
  assert.equal(show.region, 1024 * 1024);
  await rem.waitForLog(/leg 1 larger than the smallest \(20971520 bytes\)/);
});

test('a mirror leg that comes back as another disk is failed; the device serves from the other', async (t) => {
  const { exp, legs } = await startLegs(t, [12 * M, 12 * M]);
  const { nbd, rem } = await layoutDevice(t, legs, ['--layout', 'mirror'], ['--reconnect-delay', '200ms', '--leg-timeout', '1s']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  const listen = legs[1]!.listen.split('/')[0]!;
  // the same export name and port, another disk: another identity
  await exp.dstJson(['node', 'stop', 'leg1', '--force']);
  await exp.dstJson(['node', 'del', 'leg1']);
  const other = join(exp.dir, 'other.img');
  const fd = openSync(other, 'w');
  ftruncateSync(fd, 12 * M);
  closeSync(fd);
  await exp.dstJson(['node', 'add', 'leg1', '--disk', other, '--listen', listen]);
  await exp.dstJson(['security', 'add', 'leg1', '--addr', '127.0.0.1', '--perm', 'rw']);
  await exp.dstJson(['node', 'start', 'leg1']);
  await nbd.write(0, blockContent(0, 5));
  const show = await waitLegStates(rem, ['in-sync', 'failed']);
  assert.equal(show.state, 'ready');
  assert.equal(show.degraded, true);
  assert.equal(checkBlock(await nbd.read(0, 4096), 0).version, 5);
  await nbd.flush();
  assert.equal(checkBlock(readFileAt(other, 0, 4096), 0).version, 0, 'nothing was written to the other disk');
  await rem.waitForLog(/identity changed/);
});

test('node del forgets the state dir\'s record; a new node over the same legs reassembles the mirror from their metadata', async (t) => {
  const { legs } = await startLegs(t, [12 * M, 12 * M]);
  const { nbd, rem } = await layoutDevice(t, legs, ['--layout', 'mirror']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  nbd.close();
  await rem.dstJson(['node', 'stop', 'vol']);
  await rem.dstJson(['node', 'del', 'vol']);
  await rem.dstJson(['node', 'add', 'vol', '--layout', 'mirror', ...legs.flatMap((l) => ['--remote', l.listen])]);
  await rem.dstJson(['node', 'start', 'vol', '--wait', '10s']);
  const show = await waitLegStates(rem, ['in-sync', 'in-sync']);
  // the legs say they are one mirror, in sync: nothing to compare or copy
  assert.equal(show.legs![1]!.stats.comparedBytes, 0, 'the legs\' metadata, not a new initial sync');
  assert.equal(show.legs![1]!.stats.resyncedBytes, 0);
});
