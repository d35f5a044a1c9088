// adoptWithUserBuffer moves an accepted socket's handle (a Node internal) into a socket that reads
// into buffers we choose. Both paths are pinned: on this Node the adoption must happen (a Node
// upgrade that breaks it fails here instead of silently costing CPU), and a socket already
// flowing is left alone (null: the caller keeps 'data' events).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { adoptWithUserBuffer } from '../../src/engine/io/adopt.js';

interface Accepted { accepted: net.Socket; client: net.Socket }

async function acceptOne(t: { after(fn: () => void): void }, pauseOnConnect: boolean): Promise<Accepted> {
  const server = net.createServer({ pauseOnConnect });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, '127.0.0.1');
  const [accepted] = (await once(server, 'connection')) as [net.Socket];
  t.after(() => { client.destroy(); accepted.destroy(); server.close(); });
  return { accepted, client };
}

test('an accepted paused socket is adopted: reads land in our buffer, writes work, close is passed on', async (t) => {
  const { accepted, client } = await acceptOne(t, true);
  const mine = Buffer.alloc(64);
  const got: Buffer[] = [];
  let arrived: () => void = () => {};
  const adopted = adoptWithUserBuffer(accepted, () => mine, (n, buf) => {
    assert.equal(buf.buffer, mine.buffer, 'read into the buffer we chose');
    got.push(Buffer.from(buf.subarray(0, n)));
    if (Buffer.concat(got).length >= 5) arrived();
  });
  assert.ok(adopted !== null, 'adoption works on this Node');
  const done = new Promise<void>((resolve) => { arrived = resolve; });
  client.write('hello');
  await done;
  assert.equal(Buffer.concat(got).toString(), 'hello');
  adopted.write('back');
  const [reply] = (await once(client, 'data')) as [Buffer];
  assert.equal(reply.toString(), 'back');
  const acceptedClosed = once(accepted, 'close');
  adopted.destroy();
  await acceptedClosed; // the handle-less accepted socket goes with it
});

test('a socket already flowing is not adopted', async (t) => {
  const { accepted } = await acceptOne(t, false);
  accepted.on('data', () => {});
  assert.equal(accepted.readableFlowing, true);
  assert.equal(adoptWithUserBuffer(accepted, () => Buffer.alloc(64), () => {}), null);
  assert.equal(accepted.destroyed, false, 'left as it was');
});
