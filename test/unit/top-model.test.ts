// dst top's model: rates from counter deltas over the interval, busiest node first, legs under
// their node, and a narrow terminal losing the least needed columns first (never wider than it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topLines, topView } from '../../src/commands/top-model.js';
import { emptyLatencyShow } from '../../src/engine/metrics/request-metrics.js';
import { emptyStats, type LegShow } from '../../src/engine/types.js';
import { exportNode, remoteNode } from '../helpers/cli-harness.js';

const leg = (index: number, writes: number, resync: LegShow['resync'] = null): LegShow => ({
  index, remote: `192.0.2.${index}:10825`, export: null, state: resync ? 'resyncing' : 'in-sync', reason: null, size: 1 << 30, identity: null,
  outOfSyncBytes: 0, generation: null, resync, latency: emptyLatencyShow(),
  stats: { reads: 0, writes, bytesRead: 0, bytesWritten: writes * 4096, resyncedBytes: 0, comparedBytes: 0, failed: 0, reconnects: 0, resends: 0, replayed: 0, inflight: 0 },
});

test('top: rates from deltas, sorted by load, legs under their node, fits the width', () => {
  const lat = (count: number): ReturnType<typeof emptyLatencyShow> => {
    const l = emptyLatencyShow();
    l.sinceStart.write = { p50Ms: 0.5, p99Ms: 2, maxMs: 3, count };
    l.recent.write = { p50Ms: 0.5, p99Ms: 2, maxMs: 3, count };
    return l;
  };
  const before = [
    remoteNode({ name: 'quiet', latency: lat(10), stats: { ...emptyStats(), bytesWritten: 40960 } }),
    remoteNode({ name: 'busy', layout: 'mirror', latency: lat(0), legs: [leg(0, 0), leg(1, 0)], stats: { ...emptyStats(), resends: 1 } }),
  ];
  const after = [
    remoteNode({ name: 'quiet', latency: lat(10), stats: { ...emptyStats(), bytesWritten: 40960 } }),
    remoteNode({ name: 'busy', layout: 'mirror', latency: lat(2000), stats: { ...emptyStats(), bytesWritten: 2000 * 4096, resends: 4, inflight: 7 },
      legs: [leg(0, 2000), leg(1, 1000, { doneBytes: 1 << 29, totalBytes: 1 << 30, bytesPerSecond: 1 << 20, etaMs: 512_000, rate: 1 << 20 })] }),
    exportNode({ name: 'exp' }),
  ];
  const v = topView(before, after, 2000);
  assert.deepEqual(v.nodes.map((n) => n.name), ['busy', 'exp', 'quiet']);
  const busy = v.nodes[0]!;
  assert.equal(busy.writeIops, 1000);
  assert.equal(busy.writeBytesPerSecond, 1000 * 4096);
  assert.equal(busy.resends, 3, 'resends in the interval');
  assert.equal(busy.inflight, 7);
  assert.deepEqual(busy.write, { p50Ms: 0.5, p99Ms: 2 });
  assert.deepEqual(busy.legs.map((l) => l.writeIops), [1000, 500]);
  assert.equal(v.nodes[1]!.readIops, null, 'a node without latency counts has no IOPS');
  assert.equal(v.nodes[1]!.writeBytesPerSecond, 0, 'a node new since the last answer has no rate yet');

  const wide = topLines(v, 200);
  assert.match(wide[0]!, /^NAME\s+STATE\s+R-IOPS\s+W-IOPS/);
  assert.match(wide.find((l) => l.includes('└ 1'))!, /\[(#+)(\.+)\] 50% 512M\/1G eta 8m32s/);
  const narrow = topLines(v, 60);
  assert.ok(narrow.every((l) => l.length <= 60));
  assert.match(narrow[0]!, /W-IOPS/);
  assert.doesNotMatch(narrow[0]!, /RESEND/, 'the least needed column goes first');
});

test('top: a leg\'s in flight now and resends in the interval, from its transaction table', () => {
  const withTable = (l: LegShow, resends: number, inflight: number): LegShow => ({ ...l, stats: { ...l.stats, resends, inflight } });
  const before = [remoteNode({ name: 'm', layout: 'mirror', legs: [withTable(leg(0, 0), 2, 0), withTable(leg(1, 0), 0, 0)] })];
  const after = [remoteNode({ name: 'm', layout: 'mirror', legs: [withTable(leg(0, 10), 7, 3), withTable(leg(1, 10), 0, 1)] })];
  const legs = topView(before, after, 1000).nodes[0]!.legs;
  assert.deepEqual(legs.map((l) => [l.inflight, l.resends]), [[3, 5], [1, 0]]);
  const row = topLines(topView(before, after, 1000), 200).find((l) => l.includes('└ 0'))!;
  const head = topLines(topView(before, after, 1000), 200)[0]!;
  const cell = (name: string): string => row.slice(0, head.indexOf(name) + name.length).trim().split(/\s+/).pop()!;
  assert.deepEqual([cell('INFL'), cell('RESEND')], ['3', '5'], `the leg row shows them:\n${head}\n${row}`);
});
