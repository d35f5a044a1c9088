// Crash restart of the export engine, configured only through the CLI (autosave, no
// `config save` anywhere): SIGKILLed with writes in flight and restarted with the same --config
// and state dir, it serves again within 2 s of its start on the same port with the same identity;
// the remote reconnects and replays, and the NBD client sees no error and reads back every block.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blocksContent, checkBlocks } from '../helpers/blocks.js';
import { waitFor } from '../helpers/tools.js';

const BS = 4096;
const N = 64;

test('export engine SIGKILLed and restarted: no I/O error, same identity, reconnect and replay', async (t) => {
  const pair = await startPair(t, { autosave: true, size: 16 * 1024 * 1024, remotePolicy: ['--reconnect-delay', '200ms'] });
  const idFile = join(pair.exp.stateDir, 'exports', `${pair.exportName}.id`);
  const identity = readFileSync(idFile, 'utf8');
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  await c.write(0, blocksContent(0, 1, N));

  await pair.exp.kill('SIGSTOP');
  const inFlight = c.write(N * BS, blocksContent(N, 1, N));
  await waitFor('writes in flight to the stopped export', async () => (await pair.show()).stats.inflight > 0);
  await pair.exp.kill('SIGKILL');
  await pair.exp.restart();
  const back = await pair.exp.waitForState(pair.exportName, 'listening', 10_000);
  // from the restarted engine's first log line (it found the killed engine's socket) to the export serving
  const log = pair.exp.log();
  const began = log.lastIndexOf('removed a stale control socket');
  const stamp = (re: RegExp): number => Date.parse(re.exec(log.slice(log.lastIndexOf('\n', began) + 1))?.[1] ?? 'none');
  const servingMs = stamp(/^.*?(\S+Z) .*serving/m) - stamp(/^(\S+Z) /);
  t.diagnostic(`export serving ${servingMs} ms after the restarted engine began`);
  assert.ok(servingMs >= 0 && servingMs < 2000, `serving ${servingMs} ms after the engine started`);
  assert.equal(back.listen, pair.listen, 'the same port');
  assert.equal(readFileSync(idFile, 'utf8'), identity, 'the same identity');

  await inFlight;
  await c.write(2 * N * BS, blocksContent(2 * N, 1, N));
  assert.deepEqual(checkBlocks(await c.read(0, 3 * N * BS), 0, BS, { allowZero: false }), new Array(3 * N).fill(1));
  const show = await pair.show();
  assert.equal(show.state, 'ready');
  assert.equal(show.stats.failed, 0, 'no I/O error reached the NBD client');
  assert.ok(show.stats.reconnects >= 1, `reconnected (stats ${JSON.stringify(show.stats)})`);
  assert.ok(show.stats.replayed >= 1, `in-flight writes were replayed (stats ${JSON.stringify(show.stats)})`);
});
