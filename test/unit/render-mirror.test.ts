// The text of a mirror tells the truth at a glance: `node list` says degraded, resyncing and
// split-brain in its STATE column; `node show` gives each leg's state and why, out-of-sync bytes
// and resync progress with its ETA, the verify pass with its ETA and where it found mismatches, and
// a loud split-brain line naming legs and generations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Chalk } from 'chalk';
import { nodeBlock, nodeLine, nodeTable, roughSize } from '../../src/commands/render.js';
import type { LegShow, NodeShow, VerifyShow } from '../../src/engine/types.js';
import { remoteNode } from '../helpers/cli-harness.js';
import { emptyLatencyShow } from '../../src/engine/metrics/request-metrics.js';

const chalk = new Chalk({ level: 0 });
const K = 1024;
const M = 1024 * K;

function leg(index: number, over: Partial<LegShow> = {}): LegShow {
  return {
    index, remote: `192.0.2.${10 + index}:10825`, export: `leg${index}`, state: 'in-sync', reason: null, size: 64 * M, identity: null,
    outOfSyncBytes: 0, generation: null, resync: null,
    stats: { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, resyncedBytes: 0, comparedBytes: 0, failed: 0, reconnects: 0, resends: 0, replayed: 0, inflight: 0 },
    latency: emptyLatencyShow(),
    ...over,
  };
}

function mirror(over: Partial<NodeShow> = {}): NodeShow {
  return remoteNode({
    name: 'vol', layout: 'mirror', remote: null, region: M, degraded: false, size: 60 * M,
    legs: [leg(0), leg(1)], verify: null, splitBrain: null, ...over,
  });
}

/** The STATE cell of each row of `node list` (the column lines up under its header). */
function stateColumn(nodes: NodeShow[]): string[] {
  const [head, ...rows] = nodeTable(chalk, nodes).split('\n');
  const from = head!.indexOf('STATE');
  const to = head!.indexOf('SIZE');
  return rows.map((r) => r.slice(from, to).trim());
}

const resyncing = mirror({
  degraded: true,
  legs: [leg(0), leg(1, { state: 'resyncing', reason: 'leg-timeout', outOfSyncBytes: 24 * M, resync: { doneBytes: 8 * M, totalBytes: 32 * M, bytesPerSecond: 4 * M, etaMs: 6000, rate: 5 * M } })],
});

test('node list: a mirror\'s condition in the STATE column', () => {
  const behind = mirror({ degraded: true, legs: [leg(0), leg(1, { state: 'behind', outOfSyncBytes: 3 * M, generation: '00000000000000aa' })] });
  const away = mirror({ state: 'backoff', reason: 'leg', degraded: true, legs: [leg(0), leg(1, { state: 'connecting' })] });
  // what a split brain is: the node failed (reason split-brain, so said once), every leg failed with it
  const split = mirror({
    state: 'failed', reason: 'split-brain', degraded: true, splitBrain: { legs: [0, 1], generations: ['00000000000000a1', '00000000000000b7'] },
    legs: [leg(0, { state: 'failed', reason: 'split-brain' }), leg(1, { state: 'failed', reason: 'split-brain' })],
  });
  assert.deepEqual(stateColumn([mirror(), behind, resyncing, away, split, remoteNode()]), [
    'ready',
    'ready (degraded)',
    'ready (degraded, resyncing)',
    'backoff (leg, degraded)',
    'failed (split-brain, degraded)',
    'ready',
  ]);
  assert.match(nodeLine(chalk, resyncing), /^vol: remote ready \(degraded, resyncing\) mirror of 192\.0\.2\.10:10825, 192\.0\.2\.11:10825$/);
});

test('node show: each mirror leg has its state, out-of-sync bytes and resync progress with an ETA', () => {
  const text = nodeBlock(chalk, resyncing);
  assert.match(text, /^ {2}state +ready \(degraded, resyncing\)$/m);
  assert.match(text, /^ {2}legs +0: 192\.0\.2\.10:10825\/leg0 in-sync, out of sync 0; reads 0/m);
  assert.match(text, /^ +1: 192\.0\.2\.11:10825\/leg1 resyncing \(leg-timeout\), out of sync 24M, resync 8M\/32M \(25%\), 4M\/s \(paced at 5M\/s\), eta 6s; reads 0/m);
  assert.doesNotMatch(text, /SPLIT BRAIN/);

  const unknown = mirror({ legs: [leg(0), leg(1, { state: 'resyncing', outOfSyncBytes: 1536 * K, resync: { doneBytes: 0, totalBytes: 1536 * K, bytesPerSecond: 0, etaMs: null, rate: 10 * M } })] });
  assert.match(nodeBlock(chalk, unknown), /resyncing, out of sync 1\.5M, resync 0\/1\.5M \(0%\), 0\/s \(paced at 10M\/s\), eta unknown;/);

  // linear and stripe legs have nothing to be out of sync with, and no verify
  const stripe = nodeBlock(chalk, mirror({ layout: 'stripe', region: null, chunk: 512 * K, degraded: null }));
  assert.doesNotMatch(stripe, /out of sync|^ {2}verify /m);
});

test('node show: the verify pass, running or done, with its ETA and where it found mismatches', () => {
  const pass = (over: Partial<VerifyShow>): VerifyShow => ({
    running: false, doneBytes: 60 * M, totalBytes: 60 * M, mismatches: 0, repaired: 0, bytesPerSecond: 0, etaMs: null, mismatchList: [], truncated: false, ...over,
  });
  assert.match(nodeBlock(chalk, mirror()), /^ {2}verify +no pass yet \(dst node verify, or policy verify-interval\)$/m);
  const at = { offset: 3 * M + 256 * K, length: 256 * K, legs: [0, 1] };
  const running = mirror({ verify: pass({ running: true, doneBytes: 15 * M, bytesPerSecond: 5 * M, etaMs: 9000, mismatches: 1, mismatchList: [at] }) });
  assert.match(nodeBlock(chalk, running), /^ {2}verify +running 15M\/60M, 5M\/s, eta 9s, 1 mismatching, 0 repaired so far; at 3328K \(256K, leg 0, 1\)$/m);
  const early = mirror({ verify: pass({ running: true, doneBytes: 0 }) });
  assert.match(nodeBlock(chalk, early), /^ {2}verify +running 0\/60M, 0\/s, eta unknown, 0 mismatching, 0 repaired so far$/m);
  const many = Array.from({ length: 6 }, (_, k) => ({ offset: k * M, length: 256 * K, legs: [1] }));
  const done = mirror({ verify: pass({ mismatches: 70, repaired: 2, mismatchList: many, truncated: true }) });
  assert.match(nodeBlock(chalk, done), /^ {2}verify +last pass complete: 70 mismatching, 2 repaired; at 0 \(256K, leg 1\), at 1M \(256K, leg 1\), at 2M \(256K, leg 1\), at 3M \(256K, leg 1\) and 66 more$/m);
  const stopped = mirror({ verify: pass({ doneBytes: 20 * M }) });
  assert.match(nodeBlock(chalk, stopped), /^ {2}verify +last pass stopped at 20M\/60M: 0 mismatching, 0 repaired$/m);
});

test('node show: a split brain is a loud line naming the legs and their generations', () => {
  const split = mirror({ splitBrain: { legs: [0, 2], generations: ['00000000000000a1', '00000000000000b7'] }, legs: [leg(0), leg(1), leg(2)] });
  const text = nodeBlock(chalk, split);
  assert.match(text, /^ {2}state +ready \(split-brain\)$/m);
  assert.match(text, /^ +SPLIT BRAIN: leg 0 \(generation 00000000000000a1\), leg 2 \(generation 00000000000000b7\) were written apart; no leg is known to be right$/m);
  const lines = text.split('\n');
  assert.equal(lines.findIndex((l) => l.includes('SPLIT BRAIN')), lines.findIndex((l) => /^ {2}state /.test(l)) + 1, 'right under the state');
  assert.match(nodeBlock(new Chalk({ level: 1 }), split), /\u001b\[31m.*SPLIT BRAIN/, 'in red');
  const failed = nodeBlock(chalk, mirror({ state: 'failed', reason: 'split-brain', splitBrain: split.splitBrain }));
  assert.match(failed, /^ {2}state +failed \(reason: split-brain\)$/m, 'the reason is not repeated as a condition');
});

test('roughSize: one decimal, the largest unit', () => {
  assert.deepEqual([0, 900, 1536, 4 * M, 1.25 * 1024 * M, 3 * 1024 ** 4].map(roughSize), ['0', '900', '1.5K', '4M', '1.3G', '3T']);
});

test('node show: a mirror leg\'s generation is said when known', () => {
  const behind = mirror({ degraded: true, legs: [leg(0), leg(1, { state: 'behind', outOfSyncBytes: 3 * M, generation: '00000000000000aa' })] });
  assert.match(nodeBlock(chalk, behind), /^ +1: \S+ behind, out of sync 3M, generation 00000000000000aa; reads 0/m);
  assert.doesNotMatch(nodeBlock(chalk, mirror()), /generation/);
});

test('node show: each leg\'s in flight, resends and latency of the last 10 s and since start', () => {
  const lat = emptyLatencyShow();
  lat.recent.write = { p50Ms: 0.5, p99Ms: 2, maxMs: 3, count: 10 };
  lat.sinceStart.write = { p50Ms: 0.25, p99Ms: 4, maxMs: 9, count: 500 };
  const l1 = leg(1, { latency: lat });
  const text = nodeBlock(chalk, mirror({ legs: [leg(0), { ...l1, stats: { ...l1.stats, inflight: 3, resends: 7 } }] }));
  assert.match(text, /^ +1: \S+ in-sync, .*in flight 3, resends 7, reconnects 0$/m);
  assert.match(text, /^ +latency p50\/p99\/max ms, last 10 s {4}read -, write 0\.5\/2\/3 \(10\), flush -, trim -$/m);
  assert.match(text, /^ +latency p50\/p99\/max ms, since start {2}read -, write 0\.25\/4\/9 \(500\), flush -, trim -$/m);
});
