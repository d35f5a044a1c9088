// A client that sends DISC and shuts down its sending side at once (a half-close) still gets every
// reply it is owed. Found by the NBD fuzzer: the endpoint used to end its side on the client's FIN
// and drop the replies of requests in flight. A FIN without DISC stays a hard disconnect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd } from '../../src/protocol/nbd.js';
import { RawClient, fixture } from '../helpers/nbd-raw-client.js';
import { waitUntil } from '../helpers/net-testkit.js';

test('half-close after DISC: requests in flight are still answered, then the endpoint closes', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  const cookies = c.batch(() => {
    const sent = [
      c.send({ type: Cmd.WRITE, offset: 0, length: 4, payload: Buffer.from('half') }),
      c.send({ type: Cmd.READ, offset: 0, length: 4 }),
      c.send({ type: Cmd.WRITE, offset: 4096, length: 4, payload: Buffer.from('shut') }),
    ];
    c.send({ type: Cmd.DISC, offset: 0, length: 0 });
    return sent;
  });
  c.sock.end(); // FIN: nothing more from this client
  await waitUntil(() => f.target.held === 3, 5000, 'the three requests to be held');
  assert.equal(c.ended, false, 'still open while requests are in flight');
  f.target.release();
  const replies = [];
  for (let i = 0; i < 3; i++) replies.push(await c.anyReply((k) => (k === cookies[1] ? 4 : 0)));
  assert.deepEqual(new Set(replies.map((r) => r.cookie)), new Set(cookies), 'every request answered');
  assert.ok(replies.every((r) => r.error === 0), 'all succeeded');
  await c.closed;
});

test('half-close without DISC is a hard disconnect: the endpoint closes with requests in flight', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.open();
  f.target.hold();
  c.send({ type: Cmd.WRITE, offset: 0, length: 4, payload: Buffer.from('hard') });
  await waitUntil(() => f.target.held === 1, 5000, 'the write to be held');
  c.sock.end();
  await c.closed;
  assert.equal(c.quiet(), true, 'no reply after a hard disconnect');
  f.target.release();
});

test('half-close during option haggling closes the connection', async (t) => {
  const f = await fixture(t);
  const c = await RawClient.connect(f.path);
  await c.handshake();
  c.sock.end();
  await c.closed;
  assert.equal(f.target.submitted.length, 0);
});
