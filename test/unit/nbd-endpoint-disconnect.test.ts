// The end of one connection: DISC after in-flight replies, framing errors, a client that vanishes
// mid-request. (A raw client over the unix socket: test/helpers/nbd-raw-client.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, Opt, MAX_PAYLOAD } from '../../src/protocol/nbd.js';
import { encodeOption } from '../../src/protocol/nbd-options.js';
import { encodeRequest } from '../../src/protocol/nbd-replies.js';
import { RawClient, fixture, turn } from '../helpers/nbd-raw-client.js';
import { waitUntil } from '../helpers/net-testkit.js';

test('DISC waits for in-flight replies, then closes', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  // one write: the DISC is read with the two requests it must wait for
  const [wc, rc] = c.batch(() => {
    const cookies = [
      c.send({ type: Cmd.WRITE, offset: 0, length: 4, payload: Buffer.from('disc') }),
      c.send({ type: Cmd.READ, offset: 0, length: 4 }),
    ];
    c.send({ type: Cmd.DISC, offset: 0, length: 0 });
    return cookies;
  });
  await waitUntil(() => f.target.held === 2, 5000, 'both requests to be held');
  assert.equal(c.ended, false, 'still open while requests are in flight');
  assert.equal(c.quiet(), true);
  assert.equal(f.target.held, 2);
  f.target.release();
  const replies = [await c.simpleReply(), await c.simpleReply(4)];
  assert.deepEqual(new Set(replies.map((r) => r.cookie)), new Set([wc, rc]));
  await c.closed;
});

test('framing errors drop the connection: bad magic, oversize WRITE', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  const bad = encodeRequest({ type: Cmd.READ, cookie: 1n, offset: 0, length: 1 });
  bad.writeUInt32BE(0xdeadbeef, 0);
  c.write(bad);
  await c.closed;

  const d = await RawClient.connect(f.path);
  await d.open();
  d.write(encodeRequest({ type: Cmd.WRITE, cookie: 2n, offset: 0, length: MAX_PAYLOAD + 1 })); // header only
  await d.closed;
  assert.equal(f.target.submitted.length, 0);

  const e = await RawClient.connect(f.path);
  await e.handshake();
  const h = encodeOption(Opt.GO);
  h.writeUInt32BE(1 << 20, 12); // 1 MiB of option data announced
  e.write(h);
  await e.closed;
});

test('a connection closed mid-request does not crash when done() arrives later', async (t) => {
  const f = await fixture(t, { maxRequest: 1024, capacity: 2 });
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  c.send({ type: Cmd.READ, offset: 0, length: 8192 }); // 8 pieces; 2 submitted, 6 wait for capacity
  c.send({ type: Cmd.WRITE, offset: 0, length: 3, payload: Buffer.from('abc') });
  await waitUntil(() => f.target.held >= 2, 5000, 'the first pieces to be held');
  assert.equal(f.target.held, 2);
  c.destroy();
  await waitUntil(() => f.ep.connections === 0, 5000, 'the endpoint to see the close');
  assert.equal(f.ep.connections, 0);
  f.target.release(); // completions run here; a resubmit would follow within the turn
  await turn();
  assert.equal(f.target.submitted.length, 2, 'nothing more is submitted for a closed connection');
  assert.equal(f.target.capacityListeners, 0);
});
