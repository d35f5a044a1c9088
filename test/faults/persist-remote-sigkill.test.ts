// Crash restart of the remote engine, configured only through the CLI (autosave): SIGKILLed and
// restarted with the same --config and state dir, its remote node comes back `ready` with its
// policy and crypto settings, and new I/O through it works (the data written before is there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blocksContent, checkBlocks } from '../helpers/blocks.js';
import { makeKeyFile } from '../helpers/keys.js';
import { tmpDir } from '../helpers/tmp.js';

const BS = 4096;
const N = 32;

test('remote engine SIGKILLed and restarted: the node is ready again with its policy and crypto', async (t) => {
  const key = makeKeyFile(tmpDir(t, 'dst-key-'), 'vol.key', 'hex');
  const pair = await startPair(t, {
    autosave: true, size: 8 * 1024 * 1024,
    crypto: ['--cipher', 'aes-gcm', '--cipher-key-file', key.path],
    remotePolicy: ['--resend-timeout', '3s', '--max-resends', '7', '--max-inflight', '32'],
  });
  const before = await pair.show();
  const c1 = await NbdClient.connect(pair.socket);
  await c1.write(0, blocksContent(0, 1, N));
  c1.close();

  await pair.rem.kill('SIGKILL');
  await pair.rem.restart();
  const after = await pair.rem.waitForState(pair.remoteName, 'ready', 15_000);
  assert.deepEqual(after.policy, before.policy, 'the policy is back');
  assert.deepEqual(after.crypto, before.crypto, 'the crypto settings are back');
  assert.equal(after.crypto.suite, 'aes-gcm');
  assert.equal(after.remote, before.remote);
  assert.equal(after.autostart, true);

  const c2 = await NbdClient.connect(after.nbd!.socket);
  t.after(() => c2.close());
  await c2.write(N * BS, blocksContent(N, 2, N));
  const versions = checkBlocks(await c2.read(0, 2 * N * BS), 0, BS, { allowZero: false });
  assert.deepEqual(versions, [...new Array(N).fill(1), ...new Array(N).fill(2)]);
  assert.equal((await pair.show()).stats.failed, 0);
});
