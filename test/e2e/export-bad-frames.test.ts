// Bad data-side input to a real export engine stays local to its connection: the engine
// answers or closes that one connection and keeps serving everyone else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { connect } from 'node:net';
import { startPair } from '../helpers/cluster.js';
import { WireClient } from '../helpers/wire-client.js';
import { Cmd, Op, encodeFrame, encodeHeader } from '../../src/protocol/wire.js';

const SIZE = 8 * 1024 * 1024;

test('out-of-range, zero-length, oversized and unknown-flag requests get errors, the connection stays', async (t) => {
  const pair = await startPair(t, { size: SIZE });
  const c = await WireClient.connect(pair.listen);
  t.after(() => c.close());
  assert.equal((await c.hello()).status, 0);
  assert.equal((await c.io(Op.WRITE, 1, SIZE - 512, 4096, Buffer.alloc(4096)))!.status, constants.errno.ENOSPC);
  assert.equal((await c.io(Op.READ, 2, SIZE, 512))!.status, constants.errno.EINVAL);
  assert.equal((await c.io(Op.READ, 3, 0, 0))!.status, constants.errno.EINVAL);
  assert.equal((await c.io(Op.READ, 4, 0, 64 * 1024 * 1024))!.status, constants.errno.EINVAL);
  assert.equal((await c.io(Op.READ, 5, 0, 512, null, 0x80))!.status, constants.errno.EINVAL);
  const ok = await c.io(Op.WRITE, 6, 0, 512, Buffer.alloc(512, 1));
  assert.equal(ok!.status, 0, 'the same connection still works');
});

test('bad magic, a frame cut in half, garbage after the handshake and an HTTP request close only that connection', async (t) => {
  const pair = await startPair(t, { size: SIZE });
  const port = Number(pair.listen.split(':').pop());
  const good = await WireClient.connect(pair.listen);
  t.after(() => good.close());
  assert.equal((await good.hello()).status, 0);

  const closedBy = (payload: Buffer): Promise<void> => new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => s.write(payload));
    const timer = setTimeout(() => { s.destroy(); reject(new Error('export did not close the connection')); }, 12_000);
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(timer); resolve(); });
  });
  await closedBy(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  const hdr = encodeHeader({ cmd: Cmd.HELLO, op: 0, flags: 0, status: 0, length: 0, id: 0, offset: 0, ackedBelow: 0, payloadLength: 0, tagLength: 0 });
  hdr.writeUInt32BE(0xdeadbeef, 0);
  await closedBy(hdr);

  const garbage = await WireClient.connect(pair.listen);
  assert.equal((await garbage.hello()).status, 0);
  garbage.send(Buffer.from('this is not a frame at all, not even close, and longer than a header'));
  await garbage.closed;

  const half = await WireClient.connect(pair.listen);
  assert.equal((await half.hello()).status, 0);
  const frame = Buffer.concat(encodeFrame({ cmd: Cmd.IO, op: Op.WRITE, id: 1, offset: 0, length: 4096, payload: Buffer.alloc(4096, 9) }));
  half.send(frame.subarray(0, 2000));
  half.socket.end();
  await half.closed;

  // the well-behaved client is unaffected, and the half frame wrote nothing
  const r = await good.io(Op.READ, 10, 0, 4096);
  assert.equal(r!.status, 0);
  assert.ok(r!.payload.equals(Buffer.alloc(4096)), 'a frame cut in half is never executed');
});
