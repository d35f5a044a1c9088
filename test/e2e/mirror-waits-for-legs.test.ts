// Reassembly with no state-dir record and a leg away: the node waits (visible in node show,
// nothing served) and, once the leg is back, assembles from every leg's metadata by itself —
// no --degraded, nothing resynced (the legs were in sync), the data as written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { layoutDevice, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import { startEngine } from '../helpers/engine.js';
import { NbdClient } from '../helpers/nbd-client.js';
import type { NodeShow } from '../../src/engine/types.js';

const M = 1024 * 1024;

test('no state-dir record and a leg away: the node waits, then assembles without --degraded when the leg is back', async (t) => {
  const { exp, legs } = await startLegs(t, [12 * M, 12 * M]);
  const { nbd, rem } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  await nbd.write(5 * M, blockContent((5 * M) / 4096, 4));
  await nbd.flush();
  nbd.close();
  await rem.dstJson(['node', 'stop', 'vol']);
  await exp.dstJson(['node', 'stop', 'leg1', '--force']);

  const fresh = await startEngine(t);
  await fresh.dstJson(['node', 'add', 'vol', '--layout', 'mirror', ...legs.flatMap((l) => ['--remote', l.listen])]);
  await fresh.dstJson(['node', 'set', 'vol', '--reconnect-delay', '200ms']);
  const r = await fresh.dstFail(['node', 'start', 'vol', '--wait', '2s'], 1);
  assert.match(r.error?.message ?? '', /not ready after 2s: state backoff \(reason waiting-for-legs\)/);
  const waiting = await fresh.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(waiting.reason, 'waiting-for-legs');
  assert.equal(waiting.nbd, null, 'nothing is served');
  assert.equal(waiting.size, null, 'no device yet');

  await exp.dstJson(['node', 'start', 'leg1']);
  const ready = await fresh.waitForState('vol', 'ready', 20_000);
  const show = await waitLegStates(fresh, ['in-sync', 'in-sync']);
  for (const l of show.legs!) {
    assert.equal(l.stats.resyncedBytes, 0, `leg ${l.index}: nothing copied (the stop was clean)`);
    assert.equal(l.stats.comparedBytes, 0, `leg ${l.index}: nothing compared`);
  }
  const client = await NbdClient.connect(ready.nbd!.socket);
  t.after(() => client.close());
  assert.equal(checkBlock(await client.read(5 * M, 4096), (5 * M) / 4096).version, 4);
  await client.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, show.size!), 'legs identical');
});
