// The bench's --repeat: each row is the per-column median of its case's runs, cases in first-seen
// order, and --repeat takes only a positive integer; rounds rotate the systems' order; paired ratios
// pair a case's runs in the order they ran.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, medianRows, pairedRatios, parseRepeat, roundOrder, type Row } from '../../bench/stats.js';

const row = (system: string, workload: string, iops: number, p99us: number, rss: number | null): Row => ({
  system, workload, mibps: iops / 256, iops, p50us: p99us / 2, p99us, rssMiB: rss === null ? null : { remote: rss, export: rss + 1 },
});

test('median of odd and even counts, NaN for none', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('medianRows: one row per case, each column its own median, order of first appearance', () => {
  // runs interleaved as the bench makes them: round 1 (dst, nbdkit), round 2, round 3
  const runs = [
    row('dst', 'w', 100, 900, 50), row('nbdkit', 'w', 80, 700, null),
    row('dst', 'w', 300, 500, 70), row('nbdkit', 'w', 90, 600, null),
    row('dst', 'w', 200, 700, 60), row('nbdkit', 'w', 70, 800, null),
  ];
  const rows = medianRows(runs);
  assert.deepEqual(rows.map((r) => r.system), ['dst', 'nbdkit']);
  assert.deepEqual(rows[0], { system: 'dst', workload: 'w', mibps: 200 / 256, iops: 200, p50us: 350, p99us: 700, rssMiB: { remote: 60, export: 61 } });
  assert.equal(rows[1]!.iops, 80);
  assert.equal(rows[1]!.p99us, 700);
  assert.equal(rows[1]!.rssMiB, null);
});

test('medianRows: a single run is its own row', () => {
  const one = row('dst', 'w', 123, 456, 7);
  assert.deepEqual(medianRows([one]), [one]);
});

test('--repeat: default 1, positive integers only, naming the option', () => {
  assert.equal(parseRepeat(['--quick']), 1);
  assert.equal(parseRepeat(['--repeat', '3']), 3);
  for (const bad of [['--repeat'], ['--repeat', '0'], ['--repeat', '-2'], ['--repeat', '2x']]) {
    assert.throws(() => parseRepeat(bad), /for --repeat: expected a positive integer/);
  }
});

test('roundOrder: one place further each round, every system first once per cycle', () => {
  const s = ['a', 'b', 'c'];
  assert.deepEqual([1, 2, 3, 4].map((r) => roundOrder(s, r).join('')), ['abc', 'bca', 'cab', 'abc']);
  assert.deepEqual(roundOrder([], 2), []);
});

test('pairedRatios: run i of one system over run i of the other, same workload only', () => {
  const runs = [
    row('dst', 'w', 100, 1, null), row('x', 'w', 90, 1, null), row('x', 'v', 1, 1, null),
    row('x', 'w', 210, 1, null), row('dst', 'w', 200, 1, null),
    row('dst', 'w', 50, 1, null),
  ];
  assert.deepEqual(pairedRatios(runs, 'x', 'dst', 'w'), [0.9, 1.05]);
  assert.deepEqual(pairedRatios(runs, 'x', 'dst', 'none'), []);
});
