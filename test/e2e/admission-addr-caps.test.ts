// Per-address caps on an export: an allowed address holds at most max-handshakes-per-addr (8)
// connections that never finish the handshake and max-conns-per-addr in all; the newest over a
// cap gets EBUSY naming the cap, while other allowed addresses still get in. Both caps are shown by
// `node show` (text and JSON) and set with `node set`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { constants } from 'node:os';
import { startEngine } from '../helpers/engine.js';
import { sparseFile } from '../helpers/tmp.js';
import { WireClient } from '../helpers/wire-client.js';
import { Op } from '../../src/protocol/wire.js';
import type { NodeShow } from '../../src/engine/types.js';

test('per-address caps: handshakes and connections from one address, EBUSY naming the cap', async (t) => {
  const exp = await startEngine(t, { logLevel: 'info' });
  const disk = sparseFile(join(exp.dir, 'disk.img'), 1 << 20);
  await exp.dstJson(['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0']);
  await exp.dstJson(['security', 'add', 'vol', '--addr', '127.0.0.0/8', '--perm', 'rw']);
  const { listen, policy } = await exp.dstJson<NodeShow>(['node', 'start', 'vol']);
  assert.equal(policy.maxHandshakesPerAddr, 8);
  assert.equal(policy.maxConnsPerAddr, 32);
  const text = await exp.dst(['node', 'show', 'vol']);
  assert.match(text.stdout, /max-handshakes-per-addr 8, max-conns-per-addr 32/);

  const open: WireClient[] = [];
  t.after(() => { for (const c of open) c.close(); });
  const connectFrom = async (addr: string): Promise<WireClient> => {
    const c = await WireClient.connect(listen!, addr);
    open.push(c);
    return c;
  };

  // 8 connections from 127.0.0.2 that never send HELLO hold their slots; the 9th is refused.
  for (let i = 0; i < 8; i++) await connectFrom('127.0.0.2');
  const ninth = await (await connectFrom('127.0.0.2')).hello();
  assert.equal(ninth.status, constants.errno.EBUSY);
  assert.match(ninth.message!, /127\.0\.0\.2 already has 8 connections in the handshake \(max-handshakes-per-addr 8\)/);
  const other = await connectFrom('127.0.0.1');
  assert.equal((await other.hello()).status, 0, 'another allowed address gets in');
  assert.equal((await other.io(Op.READ, 1, 0, 4096))!.status, 0);

  // max-conns-per-addr counts finished handshakes too
  const set = await exp.dstJson<NodeShow>(['node', 'set', 'vol', '--max-conns-per-addr', '2', '--max-handshakes-per-addr', '4']);
  assert.equal(set.policy.maxConnsPerAddr, 2);
  assert.equal(set.policy.maxHandshakesPerAddr, 4);
  for (let i = 0; i < 2; i++) assert.equal((await (await connectFrom('127.0.0.3')).hello()).status, 0, `client ${i + 1} of 2 from 127.0.0.3`);
  const third = await (await connectFrom('127.0.0.3')).hello();
  assert.equal(third.status, constants.errno.EBUSY);
  assert.match(third.message!, /127\.0\.0\.3 already has 2 connections \(max-conns-per-addr 2\)/);

  const bad = await exp.dstFail(['node', 'set', 'vol', '--max-conns-per-addr', '65']);
  assert.match(bad.error!.message, /max-conns-per-addr 65 out of range 1-64/);
});
