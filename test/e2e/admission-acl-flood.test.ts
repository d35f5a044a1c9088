// Admission before cost: 64+ connections from an address the ACL does not cover (127.0.0.2) that
// never send HELLO, each re-opened as soon as it closes, take no connection slot: a client from
// 127.0.0.1 connects and does verified I/O throughout, for longer than the 10 s HELLO timer, and the
// engine log names 127.0.0.2 at most 20 times (refusals are logged once per address per 10 s).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import { startEngine } from '../helpers/engine.js';
import { sparseFile } from '../helpers/tmp.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { WireClient } from '../helpers/wire-client.js';
import { waitUntil } from '../helpers/net-testkit.js';
import { Op } from '../../src/protocol/wire.js';
import type { NodeShow } from '../../src/engine/types.js';

const FLOOD = 72;
/** Longer than the export's 10 s HELLO timer: a flood that held slots would recycle them in this time. */
const RUN_MS = 12_000;
const BLOCK = 4096;

test('a flood from outside the ACL never sending HELLO takes no slot from an allowed client', async (t) => {
  const exp = await startEngine(t, { logLevel: 'info' });
  const disk = sparseFile(join(exp.dir, 'disk.img'), 4 << 20);
  await exp.dstJson(['node', 'add', 'vol', '--disk', disk, '--listen', '127.0.0.1:0']);
  await exp.dstJson(['security', 'add', 'vol', '--addr', '127.0.0.1', '--perm', 'rw']);
  const { listen } = await exp.dstJson<NodeShow>(['node', 'start', 'vol']);
  const port = Number(listen!.slice(listen!.lastIndexOf(':') + 1));

  // The flood: each socket is re-opened when the export closes it; none ever writes a byte.
  let stopped = false;
  let opened = 0;
  let refusals = 0;
  const live = new Set<Socket>();
  const open = (): void => {
    if (stopped) return;
    const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    opened++;
    live.add(s);
    s.on('data', () => { refusals++; });
    s.on('error', () => {});
    s.on('close', () => { live.delete(s); open(); });
  };
  t.after(() => { stopped = true; for (const s of live) s.destroy(); });
  for (let i = 0; i < FLOOD; i++) open();
  await waitUntil(() => refusals >= FLOOD, 20_000, `${FLOOD} refusals sent to the flood`);

  const client = await WireClient.connect(listen!);
  t.after(() => client.close());
  assert.equal((await client.hello()).status, 0, 'the allowed client gets in during the flood');

  const baseFds = readdirSync(`/proc/${exp.pid}/fd`).length;
  let maxFds = 0;
  const start = Date.now();
  let id = 1;
  let rounds = 0;
  while (Date.now() - start < RUN_MS) {
    maxFds = Math.max(maxFds, readdirSync(`/proc/${exp.pid}/fd`).length);
    const block = rounds % 256;
    const w = await client.io(Op.WRITE, id++, block * BLOCK, BLOCK, blockContent(block, rounds + 1));
    assert.equal(w?.status, 0, `write of block ${block} at round ${rounds}`);
    const r = await client.io(Op.READ, id++, block * BLOCK, BLOCK);
    assert.equal(r?.status, 0, `read of block ${block} at round ${rounds}`);
    assert.equal(checkBlock(r!.payload, block).version, rounds + 1, `block ${block} reads back what was written`);
    if (rounds % 50 === 0) {
      // a new allowed client also gets in at any point of the flood
      const fresh = await WireClient.connect(listen!);
      assert.equal((await fresh.hello()).status, 0, `a new client from 127.0.0.1 gets in after ${Date.now() - start} ms`);
      fresh.close();
    }
    rounds++;
  }
  stopped = true;
  assert.ok(opened > FLOOD, `the flood re-opened its sockets (${opened} opened)`);
  // refused sockets still lingering to read their refusal are bounded (64), whatever the flood's rate
  assert.ok(maxFds <= baseFds + 64 + 8, `engine descriptors stay bounded: ${maxFds} at most, ${baseFds} before the client`);

  const stranger = await WireClient.connect(listen!, '127.0.0.2');
  t.after(() => stranger.close());
  const refused = await stranger.hello();
  assert.equal(refused.status, constants.errno.EACCES);
  assert.match(refused.message!, /address 127\.0\.0\.2 is not allowed by node vol/);

  const named = exp.log().split('\n').filter((l) => l.includes('127.0.0.2'));
  assert.ok(named.length <= 20, `at most 20 log lines name 127.0.0.2 (${named.length}, ${opened} connections):\n${named.slice(0, 30).join('\n')}`);
  assert.ok(named.length >= 1, 'the refusal is logged');
  t.diagnostic(`flood: ${opened} connections refused, ${rounds} verified write+read rounds, ${named.length} log lines, fds ${baseFds} → max ${maxFds}`);
});
