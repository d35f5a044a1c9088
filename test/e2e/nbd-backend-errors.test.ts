// nbdkit's error filter behind the export (issue 17): a server error reply reaches the remote
// node's NBD client as EIO, while writes and, once the fault is gone, reads keep being served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { NbdClient, NbdError } from '../helpers/nbd-client.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const EIO = 5;

test('nbdkit error filter: reads fail with EIO at the client, writes go on, the export keeps serving', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const dir = tmpDir(t);
  const sock = join(dir, 'nbdkit.sock');
  const trigger = join(dir, 'fail-reads');
  const server = await startNbdServer(t, 'nbdkit',
    ['-f', '-U', sock, '--filter=error', 'memory', '16M', 'error-pread=EIO', 'error-pread-rate=100%', `error-pread-file=${trigger}`], sock);
  const pair = await startPair(t, { disk: server.uri });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());

  await c.write(0, blockContent(0, 1));
  writeFileSync(trigger, '');
  const failed = await c.read(0, 4096).then(() => null, (err: unknown) => err);
  assert.ok(failed instanceof NbdError, `the read failed: ${String(failed)}`);
  assert.equal(failed.errno, EIO);
  await c.write(4096, blockContent(1, 1)); // other requests are served meanwhile
  unlinkSync(trigger);
  assert.equal(checkBlock(await c.read(0, 4096), 0).version, 1);
  assert.equal(checkBlock(await c.read(4096, 4096), 1).version, 1);
  const show = await pair.exp.show(pair.exportName);
  assert.equal(show.state, 'listening');
  assert.equal(show.backend?.reconnects, 0, 'an error reply is not a lost link');
  assert.ok(show.stats.failed >= 1, 'the export counted the failure');
});
