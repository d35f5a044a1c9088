// A read-only client sends twelve 16 MiB READs in one write and never reads the replies: the
// export stops dispatching at 32 MiB of unsent replies, so its RSS grows by at most 80 MiB; within
// 5 s of that client going away RSS is back within 32 MiB of where it started; another client is
// served (verified writes and reads) all along.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startPair } from '../helpers/cluster.js';
import { WireClient } from '../helpers/wire-client.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { Access, Cmd, Op, encodeFrame } from '../../src/protocol/wire.js';

const MiB = 1024 * 1024;
const READ = 16 * MiB;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** Write then read back a few blocks on `c`, checking every byte. */
async function verifiedIo(c: WireClient, round: number, ids: { next: number }): Promise<void> {
  for (let i = 0; i < 4; i++) {
    const blockNo = 16384 + i; // 64 MiB into the disk, away from the big reads
    const w = await c.io(Op.WRITE, ids.next++, blockNo * 4096, 4096, blockContent(blockNo, round));
    assert.equal(w?.status, 0, `write of block ${blockNo} (round ${round})`);
    const r = await c.io(Op.READ, ids.next++, blockNo * 4096, 4096);
    assert.equal(r?.status, 0, `read of block ${blockNo} (round ${round})`);
    assert.equal(checkBlock(r!.payload, blockNo).version, round);
  }
}

test('twelve unread 16 MiB READs: RSS bounded while they wait, given back when the client goes', async (t) => {
  const pair = await startPair(t, { size: 128 * MiB });
  const pid = pair.exp.pid;
  const good = await WireClient.connect(pair.listen);
  t.after(() => good.close());
  assert.equal((await good.hello()).status, 0);
  const ids = { next: 1 };
  let round = 1;
  await verifiedIo(good, round++, ids);
  const baseline = rssMiB(pid);

  const hog = await WireClient.connect(pair.listen);
  t.after(() => hog.close());
  assert.equal((await hog.hello({ access: Access.READ })).status, 0);
  hog.socket.pause(); // never read a reply
  hog.send(Buffer.concat(Array.from({ length: 12 }, (_, i) =>
    Buffer.concat(encodeFrame({ cmd: Cmd.IO, op: Op.READ, id: i + 1, offset: (i % 4) * READ, length: READ, ackedBelow: 0 })))));

  // the export has read (from disk) what it may commit for the hog: at least two of the twelve
  let peak = baseline;
  const deadline = Date.now() + 20_000;
  while ((await pair.exp.show(pair.exportName)).stats.bytesRead < 2 * READ) {
    assert.ok(Date.now() < deadline, 'the export never served the hog\'s first READs');
    peak = Math.max(peak, rssMiB(pid));
    await verifiedIo(good, round++, ids);
  }
  // it stays stalled there, and the other client keeps being served
  for (let i = 0; i < 20; i++) {
    peak = Math.max(peak, rssMiB(pid));
    await verifiedIo(good, round++, ids);
  }
  const stats = (await pair.exp.show(pair.exportName)).stats;
  assert.ok(stats.bytesRead <= 2 * READ + 1 * MiB, `the export read ${stats.bytesRead} bytes for an unread client (at most 32 MiB of replies)`);
  assert.ok(peak - baseline <= 80, `RSS grew ${(peak - baseline).toFixed(1)} MiB (baseline ${baseline.toFixed(1)}, peak ${peak.toFixed(1)})`);

  hog.close();
  const gone = Date.now();
  let after = rssMiB(pid);
  while (after - baseline > 32) {
    assert.ok(Date.now() - gone <= 5000,
      `RSS ${after.toFixed(1)} MiB 5 s after the client left, baseline ${baseline.toFixed(1)} (peak ${peak.toFixed(1)})`);
    await verifiedIo(good, round++, ids);
    after = rssMiB(pid);
  }
  await verifiedIo(good, round++, ids);
  t.diagnostic(`RSS MiB: baseline ${baseline.toFixed(1)}, peak ${peak.toFixed(1)}, after ${after.toFixed(1)} (${Date.now() - gone} ms)`);
});
