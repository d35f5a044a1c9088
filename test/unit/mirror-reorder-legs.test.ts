// A mirror whose legs' metadata orders them otherwise than the node's config: the legs are saved
// in that order and rebuilt through a gate that keeps this start's options; once per start — a
// second reorder, or a node that cannot save its legs, fails the node naming why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reorderLegs, type LegEditHost } from '../../src/engine/remote/leg-edits.js';
import { AssemblyGate } from '../../src/engine/remote/assembly-gate.js';
import { silentLogger } from '../../src/util/log.js';
import type { LegConfig, RemoteConfig } from '../../src/engine/types.js';

const legs: LegConfig[] = [{ remote: 'b:1', export: 'leg1' }, { remote: 'a:1', export: 'leg0' }, { remote: 'c:1', export: null }];
const reorder = { kind: 'reorder' as const, order: [1, 0, 2], note: 'vol: the legs\' metadata orders them otherwise' };

function host(gate: AssemblyGate): { h: LegEditHost; rebuilt: AssemblyGate[]; failed: string[] } {
  const rebuilt: AssemblyGate[] = [];
  const failed: string[] = [];
  const h = {
    name: 'vol', log: silentLogger, config: () => ({ legs } as unknown as RemoteConfig), gate: () => gate,
    fail: (reason: string, detail: string) => { failed.push(`${reason}: ${detail}`); },
    rebuild: async (commit: () => Promise<void>, g?: AssemblyGate) => { await commit(); rebuilt.push(g!); },
  } as unknown as LegEditHost;
  return { h, rebuilt, failed };
}

test('the legs are saved in the metadata\'s order and rebuilt with this start\'s options', async () => {
  const { h, rebuilt, failed } = host(new AssemblyGate({ forceInit: true }));
  const saved: LegConfig[][] = [];
  await reorderLegs(h, reorder, async (l) => { saved.push(l); });
  assert.deepEqual(saved, [[legs[1], legs[0], legs[2]]]);
  assert.equal(rebuilt.length, 1);
  assert.deepEqual(rebuilt[0]!.opts, { forceInit: true });
  assert.equal(rebuilt[0]!.reordered, true);
  assert.deepEqual(failed, []);
});

test('a second reorder in one start, or no way to save the legs, fails the node', async () => {
  const again = new AssemblyGate();
  again.reordered = true;
  const second = host(again);
  let saves = 0;
  await reorderLegs(second.h, reorder, async () => { saves++; });
  assert.equal(saves, 0);
  assert.equal(second.rebuilt.length, 0);
  assert.match(second.failed[0] ?? '', /^leg-order: vol: the legs' metadata orders them otherwise, but the node's legs could not be put in that order/);
  const unsaved = host(new AssemblyGate());
  await reorderLegs(unsaved.h, reorder, undefined);
  assert.equal(unsaved.failed.length, 1);
});
