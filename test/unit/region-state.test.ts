// The mirror's region state file: out-of-sync bits durable before the promise resolves, the
// activity log marking a region before its first write and dropping it only once idle and
// flushed, an unclean stop reporting exactly the active regions, a clean one none, a corrupt
// file taken as "leg 0 is the source", and marks coalesced into few saves.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { RegionState, type RegionStateOptions } from '../../src/engine/layout/region-state.js';
import { tmpDir } from '../helpers/tmp.js';

const M = 1024 * 1024;

function options(t: TestContext, over: Partial<RegionStateOptions> = {}): RegionStateOptions {
  return { file: join(tmpDir(t), 'vol.state'), legs: 2, regionSize: M, deviceSize: 10 * M + 4096, clock: new FakeClock(), log: silentLogger, ...over };
}

/** What an engine that died now would find: a second open of the same file. */
const reopen = (o: RegionStateOptions) => RegionState.open({ ...o, clock: new FakeClock() });

test('a new file: no bits; marks are durable once their promise resolves', async (t) => {
  const o = options(t);
  const { state, origin, crashedRegions } = await RegionState.open(o);
  assert.equal(origin, 'new');
  assert.deepEqual(crashedRegions, []);
  assert.equal(state.regions, 11);
  await state.markOutOfSync(1, 2, 4);
  await state.markOutOfSync(1, 10, 10);
  assert.equal(state.outOfSyncCount(1), 4);
  // the last region is 4 KiB long
  assert.equal(state.outOfSyncBytes(1), 3 * M + 4096);
  assert.deepEqual([state.nextOutOfSync(1, 0), state.nextOutOfSync(1, 5), state.nextOutOfSync(1, 11), state.nextOutOfSync(0, 0)], [2, 10, -1, -1]);
  const again = await reopen(o);
  assert.equal(again.state.outOfSyncCount(1), 4);
  assert.ok(again.state.isOutOfSync(1, 3) && !again.state.isOutOfSync(1, 5) && !again.state.isOutOfSync(0, 3));
});

test('activity log: first write to a cold region waits for a save, later ones do not; a crash reports it', async (t) => {
  const o = options(t);
  const { state } = await RegionState.open(o);
  const first = state.activate(3, 4);
  assert.ok(first instanceof Promise, 'a cold region is saved before the write goes out');
  await first;
  assert.equal(state.activate(3, 3), null, 'an active region costs nothing');
  state.release(3, 4, false);
  state.release(3, 3, false);
  const crashed = await reopen(o);
  assert.equal(crashed.origin, 'unclean');
  assert.deepEqual(crashed.crashedRegions.sort((a, b) => a - b), [3, 4]);
});

test('an idle region is dropped only after an acknowledged FLUSH covered its writes', async (t) => {
  const clock = new FakeClock();
  const o = options(t, { clock, idleMs: 5000 });
  const { state } = await RegionState.open(o);
  await state.activate(1, 1);
  state.release(1, 1, false);
  clock.advance(6000);
  await state.durable();
  assert.equal(state.activeCount(), 1, 'not flushed: still active');
  const token = state.flushStarted();
  await state.activate(2, 2); // written during the flush: not covered by it
  state.release(2, 2, false);
  state.flushDone(token);
  clock.advance(6000);
  await state.durable();
  assert.equal(state.activeCount(), 1, 'region 1 dropped, region 2 still unflushed');
  assert.deepEqual((await reopen(o)).crashedRegions, [2]);
  // a FUA write is durable by itself (dropped within two idle periods: the idle scan runs once a period)
  await state.activate(5, 5);
  state.release(5, 5, true);
  clock.advance(11_000);
  await state.durable();
  assert.deepEqual((await reopen(o)).crashedRegions, [2]);
});

test('a clean close keeps the bits and reports no active region; the unflushed stay suspect', async (t) => {
  const o = options(t);
  const { state } = await RegionState.open(o);
  await state.markOutOfSync(0, 7, 7);
  await state.activate(8, 8);
  state.release(8, 8, true);
  await state.close(true);
  const back = await reopen(o);
  assert.equal(back.origin, 'clean');
  assert.deepEqual(back.crashedRegions, []);
  assert.ok(back.state.isOutOfSync(0, 7));
});

test('a corrupt or foreign file: unclean, leg 0 is the source of every region', async (t) => {
  const o = options(t, { legs: 3 });
  const { state } = await RegionState.open(o);
  await state.markOutOfSync(0, 1, 1);
  await state.close(true);
  const bytes = readFileSync(o.file);
  bytes[bytes.length - 10]! ^= 0xff;
  writeFileSync(o.file, bytes);
  const back = await reopen(o);
  assert.equal(back.origin, 'unclean');
  assert.equal(back.state.outOfSyncCount(0), 0);
  assert.equal(back.state.outOfSyncCount(1), back.state.regions);
  assert.equal(back.state.outOfSyncCount(2), back.state.regions);
  await back.state.close(true);
  const other = await RegionState.open({ ...o, regionSize: 2 * M, clock: new FakeClock() });
  assert.equal(other.origin, 'unclean', 'a state file for another geometry is not trusted');
});

test('marks asked for while a save runs are coalesced into one more save', async (t) => {
  const o = options(t, { deviceSize: 256 * M });
  const { state } = await RegionState.open(o);
  const before = state.saves();
  await Promise.all(Array.from({ length: 64 }, (_, r) => state.markOutOfSync(1, r, r)));
  assert.ok(state.saves() - before <= 2, `64 marks took ${state.saves() - before} saves`);
  assert.equal((await reopen(o)).state.outOfSyncCount(1), 64);
});

test('a cleared bit is saved lazily', async (t) => {
  const clock = new FakeClock();
  const o = options(t, { clock });
  const { state } = await RegionState.open(o);
  await state.markOutOfSync(1, 0, 1);
  state.clearOutOfSync(1, 0);
  assert.equal(state.outOfSyncCount(1), 1);
  assert.equal((await reopen(o)).state.outOfSyncCount(1), 2, 'not saved yet: a crash repeats one copy');
  clock.advance(1000);
  await state.durable();
  assert.equal((await reopen(o)).state.outOfSyncCount(1), 1);
});
