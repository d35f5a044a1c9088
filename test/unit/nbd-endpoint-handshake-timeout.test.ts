// A client that does not finish NBD option negotiation in time is cut off; one that did is not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { startNbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import { createMemoryTarget } from '../helpers/memory-target.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { tmpDir } from '../helpers/tmp.js';
import { waitUntil, withTimeout } from '../helpers/net-testkit.js';

test('NBD handshake timeout: a silent client is closed at the deadline, a negotiated one stays', async (t) => {
  const clock = new FakeClock();
  const path = join(tmpDir(t, 'dst-nbd-hs-'), 'vol.sock');
  const target = createMemoryTarget({ name: 'vol', size: 1 << 20 });
  const ep = await startNbdEndpoint({ target, socketPath: path, tcp: null, log: silentLogger, clock, handshakeTimeoutMs: 5000 });
  t.after(() => ep.close({ force: true }));

  const silent = connect(path);
  const greeting = once(silent, 'data'); // the server speaks first; this client then says nothing
  await greeting;
  const client = await NbdClient.connect(path);
  t.after(() => client.close());
  assert.equal(ep.connections, 2);

  clock.advance(4999);
  await new Promise((r) => setImmediate(r));
  assert.equal(silent.destroyed, false, 'not before the deadline');
  const closed = once(silent, 'close');
  clock.advance(1);
  await withTimeout(closed, 2000, 'the silent client to be closed at the deadline');
  await waitUntil(() => ep.connections === 1, 2000, 'the silent connection to be dropped');

  const data = Buffer.alloc(4096, 0x5a);
  await client.write(0, data);
  assert.deepEqual(await client.read(0, 4096), data, 'the negotiated client is still served');
});
