// The mirror's region state: out-of-sync bits durable before the promise resolves (in the file and
// at the replica), the activity log marking a region before its first write and dropping it only
// once idle and flushed, an unclean stop recording exactly the active regions, a clean one none, a
// corrupt file reported as unusable, and marks coalesced into few saves.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { randomBytes } from 'node:crypto';
import { RegionState, blankSnapshot, readMirrorRecord, type RegionStateOptions } from '../../src/engine/layout/region-state.js';
import { newLineage } from '../../src/engine/layout/lineage.js';
import type { MirrorSnapshot } from '../../src/engine/layout/state-codec.js';
import { tmpDir } from '../helpers/tmp.js';

const M = 1024 * 1024;
const rnd = { bytes: (n: number) => randomBytes(n) };

interface Geometry { legs: number; regionSize: number; deviceSize: number }
type Opts = RegionStateOptions & Geometry;

function options(t: TestContext, over: Partial<Opts> = {}): Opts {
  return { file: join(tmpDir(t), 'vol.state'), legs: 2, regionSize: M, deviceSize: 10 * M + 4096, clock: new FakeClock(), log: silentLogger, rnd, ...over };
}

/** A new mirror's state, saved. */
async function create(o: Opts): Promise<RegionState> {
  const state = new RegionState(o, blankSnapshot(o.legs, o.regionSize, o.deviceSize, newLineage(o.legs, rnd)));
  await state.saveNow();
  return state;
}

/** What an engine that died now would find in its state dir. */
async function record(o: Opts): Promise<MirrorSnapshot> {
  const rec = await readMirrorRecord(o.file);
  assert.ok(rec !== null && typeof rec === 'object', `the record is usable: ${String(rec)}`);
  return rec;
}

/** The state an engine restarted now would run with. */
const reopen = async (o: Opts) => new RegionState({ ...o, clock: new FakeClock() }, await record(o));

test('a new file: no bits; marks are durable once their promise resolves', async (t) => {
  const o = options(t);
  const state = await create(o);
  assert.deepEqual((await record(o)).active, []);
  assert.equal(state.regions, 11);
  await state.markOutOfSync(1, 2, 4);
  await state.markOutOfSync(1, 10, 10);
  assert.equal(state.outOfSyncCount(1), 4);
  // the last region is 4 KiB long
  assert.equal(state.outOfSyncBytes(1), 3 * M + 4096);
  assert.deepEqual([state.nextOutOfSync(1, 0), state.nextOutOfSync(1, 5), state.nextOutOfSync(1, 11), state.nextOutOfSync(0, 0)], [2, 10, -1, -1]);
  const again = await reopen(o);
  assert.equal(again.outOfSyncCount(1), 4);
  assert.ok(again.isOutOfSync(1, 3) && !again.isOutOfSync(1, 5) && !again.isOutOfSync(0, 3));
});

test('activity log: first write to a cold region waits for a save, later ones do not; a crash reports it', async (t) => {
  const o = options(t);
  const state = await create(o);
  const first = state.activate(3, 4);
  assert.ok(first instanceof Promise, 'a cold region is saved before the write goes out');
  await first;
  assert.equal(state.activate(3, 3), null, 'an active region costs nothing');
  state.release(3, 4, false);
  state.release(3, 3, false);
  const crashed = await record(o);
  assert.equal(crashed.clean, false);
  assert.deepEqual(crashed.active.sort((a, b) => a - b), [3, 4]);
});

test('an idle region is dropped only after an acknowledged FLUSH covered its writes', async (t) => {
  const clock = new FakeClock();
  const o = options(t, { clock, idleMs: 5000 });
  const state = await create(o);
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
  assert.deepEqual((await record(o)).active, [2]);
  // a FUA write is durable by itself (dropped within two idle periods: the idle scan runs once a period)
  await state.activate(5, 5);
  state.release(5, 5, true);
  clock.advance(11_000);
  await state.durable();
  assert.deepEqual((await record(o)).active, [2]);
});

test('a clean close keeps the bits and reports no active region; the unflushed stay suspect', async (t) => {
  const o = options(t);
  const state = await create(o);
  await state.markOutOfSync(0, 7, 7);
  await state.activate(8, 8);
  state.release(8, 8, true);
  await state.close(true);
  const back = await record(o);
  assert.equal(back.clean, true);
  assert.deepEqual(back.active, []);
  assert.ok((await reopen(o)).isOutOfSync(0, 7));
});

test('a corrupt file is reported as unusable, never half read', async (t) => {
  const o = options(t, { legs: 3 });
  const state = await create(o);
  await state.markOutOfSync(0, 1, 1);
  await state.close(true);
  const bytes = readFileSync(o.file);
  bytes[bytes.length - 10]! ^= 0xff;
  writeFileSync(o.file, bytes);
  assert.match(String(await readMirrorRecord(o.file)), /checksum/);
  assert.equal(await readMirrorRecord(join(tmpDir(t), 'none.state')), null);
});

test('every save goes to the replica too, and is durable only once the replica has it', async (t) => {
  const copies: Buffer[] = [];
  let release: () => void = () => {};
  const o = options(t, {
    replicate: (body) => new Promise<void>((resolve) => { copies.push(body); release = resolve; }),
  });
  const state = new RegionState(o, blankSnapshot(o.legs, o.regionSize, o.deviceSize, newLineage(o.legs, rnd)));
  let durable = false;
  const marked = state.markOutOfSync(1, 4, 4).then(() => { durable = true; });
  await new Promise((r) => setImmediate(r));
  assert.equal(copies.length, 1);
  assert.equal(durable, false, 'not acknowledged before the replica has it');
  release();
  await marked;
  assert.deepEqual(copies[0], readFileSync(o.file), 'the replica gets the bytes the state dir has');
});

test('marks asked for while a save runs are coalesced into one more save', async (t) => {
  const o = options(t, { deviceSize: 256 * M });
  const state = await create(o);
  const before = state.saves();
  await Promise.all(Array.from({ length: 64 }, (_, r) => state.markOutOfSync(1, r, r)));
  assert.ok(state.saves() - before <= 2, `64 marks took ${state.saves() - before} saves`);
  assert.equal((await reopen(o)).outOfSyncCount(1), 64);
});

test('a cleared bit is saved lazily', async (t) => {
  const clock = new FakeClock();
  const o = options(t, { clock });
  const state = await create(o);
  await state.markOutOfSync(1, 0, 1);
  state.clearOutOfSync(1, 0);
  assert.equal(state.outOfSyncCount(1), 1);
  assert.equal((await reopen(o)).outOfSyncCount(1), 2, 'not saved yet: a crash repeats one copy');
  clock.advance(1000);
  await state.durable();
  assert.equal((await reopen(o)).outOfSyncCount(1), 1);
});
