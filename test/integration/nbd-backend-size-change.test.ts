// The NBD backend's size check on reconnect (issue 17), on an injected clock: the server comes back
// with another size (a gate sends new connections to an 8 MiB server instead of the 16 MiB one).
// What waited fails with EIO naming both sizes, new requests fail the same way at once, and the
// attempts keep backing off (100, 200, 400 ms: a wrong server is a failed attempt, not a success);
// once the right size is back the backend serves again, with the data written before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FakeClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { DEFAULT_POLICY, type Policy } from '../../src/engine/policy.js';
import { NbdBackend } from '../../src/engine/export/nbd-backend.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { nbdGate } from '../helpers/nbd-gate.js';
import { blocksContent, checkBlocks } from '../helpers/blocks.js';
import { requireTool, sleep, waitFor } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

test('NBD backend: a server back at another size fails requests with EIO and is retried with growing delays until the size is right', async (t) => {
  if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
  const dir = tmpDir(t);
  const big = join(dir, 'big.sock'), small = join(dir, 'small.sock'), front = join(dir, 'gate.sock');
  await startNbdServer(t, 'nbdkit', ['-f', '-U', big, 'memory', '16M'], big);
  await startNbdServer(t, 'nbdkit', ['-f', '-U', small, 'memory', '8M'], small);
  const g = await nbdGate(t, front, big);
  const clock = new FakeClock();
  const policy: Policy = { ...DEFAULT_POLICY, reconnectDelayMs: 100 };
  let wrongSize = 0;
  const log = createLogger('info', 'text', (line) => { if (line.includes('came back with')) wrongSize++; });
  const backend = await NbdBackend.open(`nbd+unix:///?socket=${front}`, { clock, log, policy: () => policy });
  t.after(() => backend.close());
  assert.equal(backend.info.size, 16 * MiB);
  await backend.write(0, Buffer.from(blocksContent(0, 3, 2)), false);

  g.retarget(small);
  g.shut();
  await waitFor('the link to drop', () => backend.show().state === 'reconnecting');
  g.state.open = true;
  const waiting = backend.read(0, 8192).then(() => null, (err: NodeJS.ErrnoException) => err);

  /** The attempt comes `delay` ms after the last one, not 1 ms sooner, and finds the wrong size. */
  const wrongAt = async (delay: number): Promise<void> => {
    const before = g.state.accepted, seen = wrongSize;
    clock.advance(delay - 1);
    await sleep(20);
    assert.equal(g.state.accepted, before, `no attempt before ${delay} ms`);
    clock.advance(1);
    await waitFor(`the attempt at ${delay} ms to find the wrong size`, () => wrongSize === seen + 1);
  };
  await wrongAt(100);
  const err = await waiting;
  assert.equal(err?.code, 'EIO');
  assert.match(err?.message ?? '', new RegExp(`serves ${8 * MiB} bytes, not the ${16 * MiB}`));
  await assert.rejects(backend.read(0, 4096), (e: NodeJS.ErrnoException) => e.code === 'EIO' && /another size/.test(e.message),
    'a new request fails at once while the size is wrong');
  await wrongAt(200);
  await wrongAt(400);
  assert.equal(backend.show().state, 'reconnecting');

  g.retarget(big);
  clock.advance(800);
  await waitFor('the right server back', () => backend.show().state === 'connected');
  assert.deepEqual(checkBlocks(await backend.read(0, 8192), 0), [3, 3], 'the data is there again');
});
