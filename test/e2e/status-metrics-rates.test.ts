// `dst status` (text) says where the metrics endpoint is, or that it is off, and shows the
// engine-wide rates while I/O runs: the remote engine its NBD writes, the export engine the
// writes it serves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { blockContent } from '../helpers/blocks.js';
import { NbdClient } from '../helpers/nbd-client.js';
import type { Engine } from '../helpers/engine.js';

/** The write IOPS of the status text's rates line. */
function writeIops(text: string): number {
  const m = /^rates \(last 10 s\) read \S+ IOPS \S+, write (\S+) IOPS \S+$/m.exec(text);
  assert.ok(m, `a rates line in:\n${text}`);
  return Number(m[1]);
}

async function statusText(e: Engine): Promise<string> {
  const r = await e.dst(['status']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

test('status: the metrics line and the rates during I/O', async (t) => {
  const pair = await startPair(t, { size: 16 * 1024 * 1024, remoteEngineArgs: ['--metrics-listen', '127.0.0.1:0'] });
  const addr = (await pair.rem.status()).metrics!;
  assert.match(await statusText(pair.rem), new RegExp(`^metrics http://${addr.replace(/[.[\]]/g, '\\$&')}/metrics$`, 'm'));
  assert.match(await statusText(pair.exp), /^metrics off \(dst engine --metrics-listen ADDR:PORT\)$/m);
  assert.equal(writeIops(await statusText(pair.exp)), 0, 'idle');

  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  let writing = true;
  const loop = (async () => {
    for (let i = 0; writing; i = (i + 1) % 256) await c.write(i * 4096, blockContent(i, 1));
  })();
  try {
    for (const e of [pair.rem, pair.exp]) {
      const text = await statusText(e);
      assert.ok(writeIops(text) > 0, `write rate during I/O:\n${text}`);
    }
  } finally {
    writing = false;
    await loop;
  }
});
