// On reassembly the legs' metadata wins over the order the node was given: legs at other
// positions than their metadata's index make the node reorder (each leg's position named), a leg
// without metadata goes where its export identity is listed, and two legs claiming one index are
// refused naming both (the one the metadata lists by export identity keeps it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { planAssembly, type AssemblyInput, type LegFound } from '../../src/engine/layout/assemble.js';
import { cloneLineage, newLineage, type Lineage } from '../../src/engine/layout/lineage.js';
import { blankSnapshot } from '../../src/engine/layout/region-state.js';

const rnd = { bytes: (n: number) => randomBytes(n) };
const M = 1024 * 1024;
const SIZE = 64 * M;

function mirror(legs: number): { l: Lineage; ids: Buffer[] } {
  const l = newLineage(legs, rnd);
  const ids = Array.from({ length: legs }, () => randomBytes(16));
  l.members = ids.map((b) => Buffer.from(b));
  return { l, ids };
}

const meta = (index: number, l: Lineage): LegFound => ({ kind: 'meta', index, seq: 1n, snapshot: blankSnapshot(l.legGen.length, M, SIZE, cloneLineage(l)), bad: null });

function input(found: LegFound[], identities: (Buffer | null)[], over: Partial<AssemblyInput> = {}): AssemblyInput {
  return { name: 'vol', legNames: found.map((_, i) => `leg ${i} (h${i}:1)`), regionSize: M, deviceSize: SIZE, record: null, found, identities, opts: {}, rnd, ...over };
}

test('legs given in another order than their metadata: the node is told to reorder, naming each leg\'s index', () => {
  const { l, ids } = mirror(2);
  const r = planAssembly(input([meta(1, l), meta(0, l)], [ids[1]!, ids[0]!]));
  assert.equal(r.kind, 'reorder');
  if (r.kind !== 'reorder') return;
  assert.deepEqual(r.order, [1, 0], 'leg 0 is the node\'s second leg, leg 1 its first');
  assert.match(r.note, /leg 1 \(h1:1\) is leg 0, leg 0 \(h0:1\) is leg 1/);
  const again = planAssembly(input([meta(0, l), meta(1, l)], ids));
  assert.equal(again.kind, 'plan', 'in the metadata\'s order it assembles');
  assert.deepEqual(again.kind === 'plan' && again.plan.compare, []);
});

test('a leg without metadata takes the index its export identity has in the metadata', () => {
  const { l, ids } = mirror(3);
  const r = planAssembly(input([meta(2, l), { kind: 'blank' }, meta(0, l)], [ids[2]!, ids[1]!, ids[0]!]));
  assert.deepEqual(r.kind === 'reorder' && r.order, [2, 1, 0]);
  const away = planAssembly(input([{ kind: 'away' }, meta(0, l), meta(1, l)], [null, ids[0]!, ids[1]!]));
  assert.deepEqual(away.kind === 'reorder' && away.order, [1, 2, 0], 'a leg away takes the index left');
});

test('two legs claiming one index: refused naming both, or the listed one keeps it and the other is initialised only with --force-init', () => {
  const { l, ids } = mirror(2);
  const found = [meta(0, l), meta(0, l)];
  assert.throws(() => planAssembly(input(found, [randomBytes(16), randomBytes(16)])),
    /vol: leg 0 \(h0:1\) and leg 1 \(h1:1\) both hold the metadata of leg 0 of this mirror, and none is the export its metadata lists there/);
  assert.throws(() => planAssembly(input(found, [randomBytes(16), ids[0]!])),
    /leg 0 \(h0:1\) holds the metadata of leg 0 of this mirror, which is leg 1 \(h1:1\) \(by its export identity\).*--force-init/);
  const forced = planAssembly(input(found, [randomBytes(16), ids[0]!], { opts: { forceInit: true } }));
  assert.deepEqual(forced.kind === 'reorder' && forced.order, [1, 0], 'the listed leg is leg 0, the initialised one takes the free index');
});
