// A leg removed by `leg del` shares no history with the mirror any more: given to a fresh engine
// (empty state dir) with the mirror's other leg it is refused, naming it and what it holds, not
// taken for a split brain; with --force-init it is initialised and synced from the mirror's leg,
// copying only what differs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { layoutDevice, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import { startEngine } from '../helpers/engine.js';
import { NbdClient } from '../helpers/nbd-client.js';
import type { NodeShow } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const REGION = 256 * K;

test('a removed leg given back to a fresh engine: refused without --force-init, initialised and synced with it', async (t) => {
  const { legs } = await startLegs(t, [12 * M, 12 * M, 12 * M]);
  const [a, removed, added] = legs as [typeof legs[0], typeof legs[0], typeof legs[0]];
  const { rem, nbd } = await layoutDevice(t, [a, removed], ['--layout', 'mirror', '--region', '256K'], ['--leg-timeout', '500ms']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  await nbd.write(0, blockContent(0, 1));
  await rem.dstJson(['node', 'leg', 'del', 'vol', '1']);
  await rem.dstJson(['node', 'leg', 'add', 'vol', '--remote', added.listen]);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  await nbd.write(3 * REGION, blockContent((3 * REGION) / 4096, 2)); // the removed leg never had it
  await nbd.flush();
  nbd.close();
  await rem.dstJson(['node', 'stop', 'vol']);
  await rem.kill('SIGKILL');

  const fresh = await startEngine(t);
  await fresh.dstJson(['node', 'add', 'vol', '--layout', 'mirror', '--remote', a.listen, '--remote', removed.listen]);
  const events = await fresh.events({ node: 'vol' });
  t.after(() => events.close());
  const r = await fresh.dstFail(['node', 'start', 'vol', '--wait', '5s'], 1);
  assert.doesNotMatch(r.error?.message ?? '', /split-brain/);
  await fresh.waitForLog(/leg 1 \(\S+\/leg1\) holds this mirror's metadata from before it was removed \(leg 1, generation [0-9a-f]{16}; no history in common with the mirror now, at generation [0-9a-f]{16}\).*--force-init/);
  const refused = await fresh.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(refused.state, 'failed');
  assert.equal(refused.splitBrain, null, 'not a split brain');
  assert.equal(refused.nbd, null, 'nothing is served');
  assert.equal(events.records.filter((e) => e.event === 'split-brain').length, 0);

  const forced = await fresh.dstJson<NodeShow>(['node', 'start', 'vol', '--force-init', '--wait', '10s']);
  assert.equal(forced.state, 'ready');
  const synced = await waitLegStates(fresh, ['in-sync', 'in-sync']);
  assert.equal(synced.legs![0]!.stats.resyncedBytes, 0, 'nothing is copied onto the mirror\'s leg');
  assert.equal(synced.legs![1]!.stats.comparedBytes, synced.size, 'the initialised leg compared every region');
  assert.equal(synced.legs![1]!.stats.resyncedBytes, REGION, 'and copied only the region written after it was removed');
  const client = await NbdClient.connect(synced.nbd!.socket);
  t.after(() => client.close());
  assert.equal(checkBlock(await client.read(3 * REGION, 4096), (3 * REGION) / 4096).version, 2);
  await client.flush();
  assert.ok(sameBytes(a.file, removed.file, synced.size!), 'legs identical');
});
