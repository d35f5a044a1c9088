// CAN_MULTI_CONN is advertised, and holds: every connection of a node reaches the same target,
// and a FLUSH on one connection reaches it only after the writes already answered on others
// (the export's FLUSH is one fdatasync of the whole file, so it then covers them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { silentLogger } from '../../src/util/log.js';
import { TxFlag } from '../../src/protocol/nbd.js';
import { startNbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import { createMemoryTarget } from '../helpers/memory-target.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { tmpDir } from '../helpers/tmp.js';

test('CAN_MULTI_CONN: a FLUSH on one connection follows the writes answered on the others', async (t) => {
  const path = join(tmpDir(t, 'dst-nbd-mc-'), 'vol.sock');
  const target = createMemoryTarget({ name: 'vol', size: 1 << 20, delayMs: 1 });
  const ep = await startNbdEndpoint({ target, socketPath: path, tcp: null, log: silentLogger });
  t.after(() => ep.close({ force: true }));
  const conns = await Promise.all([NbdClient.connect(path), NbdClient.connect(path), NbdClient.connect(path)]);
  t.after(() => { for (const c of conns) c.close(); });
  for (const c of conns) assert.equal(c.flags & TxFlag.CAN_MULTI_CONN, TxFlag.CAN_MULTI_CONN);

  const [a, b, flusher] = conns as [NbdClient, NbdClient, NbdClient];
  const blocks = [0, 1, 2, 3].map((i) => Buffer.alloc(4096, 0x10 + i));
  await Promise.all([a.write(0, blocks[0]!), b.write(4096, blocks[1]!), a.write(8192, blocks[2]!), b.write(12288, blocks[3]!)]);
  await flusher.flush();
  const ops = target.submitted.map((r) => r.op);
  assert.deepEqual(ops.slice(0, 4).sort(), ['write', 'write', 'write', 'write']);
  assert.deepEqual(ops.slice(4), ['flush'], 'the flush reached the target after every answered write');
  for (const [i, c] of conns.entries()) {
    assert.deepEqual(await c.read(0, 16384), Buffer.concat(blocks), `connection ${i} sees every connection's writes`);
  }
});
