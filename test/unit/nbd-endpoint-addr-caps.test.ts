// The NBD endpoint's TCP listener admits peers by address: one address may hold at most
// max-handshakes-per-addr connections still haggling options (over it, the newest is closed before
// the greeting), while another address still connects and is served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { silentLogger } from '../../src/util/log.js';
import { startNbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import { createMemoryTarget } from '../helpers/memory-target.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { withTimeout } from '../helpers/net-testkit.js';

/** Connect from `localAddress`; resolves with the socket and whether the NBD greeting came (or it was closed first). */
async function probe(port: number, localAddress: string): Promise<{ s: Socket; greeted: boolean }> {
  const s = connect({ host: '127.0.0.1', port, localAddress });
  s.on('error', () => {});
  const greeted = await withTimeout(Promise.race([
    once(s, 'data').then(() => true),
    once(s, 'close').then(() => false),
  ]), 5000, `greeting or close for a client from ${localAddress}`);
  return { s, greeted };
}

test('NBD TCP listener: per-address handshake cap; other addresses still get in', async (t) => {
  const target = createMemoryTarget({ name: 'vol', size: 1 << 20 });
  const caps = { maxHandshakesPerAddr: 3, maxConnsPerAddr: 32 };
  const ep = await startNbdEndpoint({
    target, socketPath: null, tcp: { host: '127.0.0.1', port: 0 }, log: silentLogger, addrCaps: () => caps,
  });
  t.after(() => ep.close({ force: true }));
  const port = ep.tcpAddress!.port;

  const held: Socket[] = [];
  t.after(() => { for (const s of held) s.destroy(); });
  for (let i = 0; i < 3; i++) {
    const p = await probe(port, '127.0.0.2');
    held.push(p.s);
    assert.equal(p.greeted, true, `silent connection ${i + 1} of 3 is greeted`);
  }
  const over = await probe(port, '127.0.0.2');
  held.push(over.s);
  assert.equal(over.greeted, false, 'the 4th silent connection from 127.0.0.2 is closed before the greeting');
  assert.equal(ep.connections, 3);

  const client = await NbdClient.connect({ host: '127.0.0.1', port });
  t.after(() => client.close());
  const data = Buffer.alloc(4096, 0x6b);
  await client.write(0, data);
  assert.deepEqual(await client.read(0, 4096), data, 'a client from 127.0.0.1 is served');

  caps.maxHandshakesPerAddr = 4; // read at each accept: a policy change applies at once
  const now = await probe(port, '127.0.0.2');
  held.push(now.s);
  assert.equal(now.greeted, true, 'after raising the cap, one more is admitted');
});
