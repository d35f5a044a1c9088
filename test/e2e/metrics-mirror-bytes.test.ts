// A mirror's byte counters on /metrics and in node show: the node's are the bytes its NBD client
// wrote and read (once, whatever the legs did), while each leg's dst_leg_* counters hold what the
// device sent it — every leg's copy of a write and, for a leg that went behind and came back, the
// resync's copies (read from the other leg, written to it). Before the test reads anything the
// node has read nothing, though the resync read the data leg 1 missed from leg 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blocksContent, checkBlocks } from '../helpers/blocks.js';
import { layoutDevice, startLegs, waitLegStates } from '../helpers/legs.js';
import { sample, scrape } from '../helpers/metrics.js';
import type { NodeShow } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const PIECE = 64 * K;
const B = 4096;

test('metrics: a mirror counts its NBD bytes once; its legs count their copies and the resync', async (t) => {
  const { exp, legs } = await startLegs(t, [12 * M, 12 * M]);
  const { nbd, rem } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K'], ['--leg-timeout', '500ms', '--reconnect-delay', '200ms'],
    { args: ['--metrics-listen', '127.0.0.1:0'] });
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  const node = { node: 'vol' };
  const leg = (i: number): Record<string, string> => ({ node: 'vol', leg: String(i) });

  let written = 0;
  let writes = 0;
  const write = async (piece: number, version: number): Promise<void> => {
    await nbd.write(piece * PIECE, blocksContent((piece * PIECE) / B, version, PIECE / B));
    written += PIECE;
    writes++;
  };
  for (let p = 0; p < 32; p++) await write(p, 1); // 2 MiB on both legs
  await exp.dstJson(['node', 'stop', 'leg1', '--force']);
  for (let p = 0; p < 16; p++) await write(p * 4, 2); // 1 MiB leg 1 misses
  await nbd.flush();
  await waitLegStates(rem, ['in-sync', 'behind']);
  await exp.dstJson(['node', 'start', 'leg1']);
  const synced = await waitLegStates(rem, ['in-sync', 'in-sync']);
  const resynced = synced.legs![1]!.stats.resyncedBytes;
  assert.ok(resynced >= 16 * PIECE, `leg 1 resynced ${resynced} bytes`);

  const before = await scrape(rem);
  assert.equal(sample(before, 'dst_write_bytes_total', node), written, 'the node wrote what the test wrote, once');
  assert.equal(sample(before, 'dst_read_bytes_total', node), 0, 'no application read yet');
  assert.equal(sample(before, 'dst_requests_total', { ...node, op: 'write' }), writes);
  const legWrite = [0, 1].map((i) => sample(before, 'dst_leg_write_bytes_total', leg(i))!);
  assert.ok(legWrite[0]! >= written, `leg 0 took every write: ${legWrite[0]} ≥ ${written}`);
  assert.ok(legWrite[1]! >= 32 * PIECE + resynced, `leg 1: the writes before it stopped and the resync: ${legWrite[1]}`);
  // the resync reads only the source's data (a region's holes go as zeroes, not read): the 16 pieces leg 1 missed
  assert.ok(sample(before, 'dst_leg_read_bytes_total', leg(0))! >= 16 * PIECE, 'the resync read from leg 0');
  assert.ok(sample(before, 'dst_leg_requests_total', { ...leg(0), op: 'write' })! >= writes);

  const back = await nbd.read(0, 32 * PIECE);
  const versions = checkBlocks(back, 0);
  for (let p = 0; p < 32; p++) assert.equal(versions[(p * PIECE) / B], p % 4 === 0 ? 2 : 1, `piece ${p}`);
  const after = await scrape(rem);
  assert.equal(sample(after, 'dst_read_bytes_total', node), back.length, 'reads: the bytes the test read');
  assert.equal(sample(after, 'dst_write_bytes_total', node), written);
  const show = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.deepEqual([show.stats.bytesRead, show.stats.bytesWritten], [back.length, written], 'node show says the same');
});
