// `nbdkit file` killed and restarted under verified load (issue 17): the export's NBD backend
// reconnects and re-issues what was in flight; the NBD client of the remote node sees a pause and
// zero errors; the reconnect shows in `node show` (backend reconnects) and as events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { BlockTracker } from '../helpers/blocks.js';
import { requireTool, sleep } from '../helpers/tools.js';
import { sparseFile, tmpDir } from '../helpers/tmp.js';

const BLOCKS = 2048;

test('nbdkit file killed and restarted under verified load: zero client errors, reconnect in node show and events', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const dir = tmpDir(t);
  const file = sparseFile(join(dir, 'disk.img'), BLOCKS * 4096);
  const sock = join(dir, 'nbdkit.sock');
  const server = await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, 'file', file], sock);
  const pair = await startPair(t, { disk: server.uri });
  await pair.exp.dstJson(['node', 'set', pair.exportName, '--reconnect-delay', '100ms']);
  const events = await pair.exp.events({ node: pair.exportName });
  t.after(() => events.close());

  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  const tracker = new BlockTracker();
  let stop = false;
  let ops = 0;
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      const block = (w * 7919 + i * 31) % BLOCKS;
      const { version, data } = tracker.nextContent(block);
      await c.write(block * 4096, data);
      tracker.ack(block, version);
      tracker.check(block, await c.read(block * 4096, 4096));
      ops++;
    }
  };
  const load = Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
  await sleep(500);
  const before = ops;
  await server.kill();
  await sleep(700); // the server is away: requests wait
  await server.restart();
  await events.waitFor((r) => r.event === 'connected' && r.op === 'nbd-backend', 20_000, 'the backend reconnected');
  const after = ops;
  await sleep(500);
  stop = true;
  await load; // any client error rejects here
  assert.ok(before > 0 && ops > after, `I/O before (${before}) and after the restart (${ops - after})`);
  assert.ok(events.records.some((r) => r.event === 'disconnected' && r.op === 'nbd-backend'), 'the drop is an event');
  const show = await pair.exp.show(pair.exportName);
  assert.equal(show.backend?.state, 'connected');
  assert.equal(show.backend?.reconnects, 1);
  assert.ok((show.backend?.reissued ?? 0) > 0, `requests were in flight when the server was killed, and re-issued (${show.backend?.reissued})`);
  assert.equal((await pair.show()).state, 'ready');
  for (let b = 0; b < BLOCKS; b += 64) tracker.check(b, await c.read(b * 4096, 4096));
});
