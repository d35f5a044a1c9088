// nbdcopy 256 MiB of random data into dst and back out: equal to the source and to the export's file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { requireTool, run } from '../helpers/tools.js';

const SIZE = 256 * 1024 * 1024;

async function sha256(path: string, length = Infinity): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, length === Infinity ? {} : { start: 0, end: length - 1 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

test('nbdcopy 256 MiB in and out through dst, byte-identical', async (t) => {
  if (!requireTool(t, 'nbdcopy', 'libnbd-bin')) return;
  const pair = await startPair(t, { size: SIZE });
  const src = join(pair.rem.dir, 'src.bin');
  const fd = openSync(src, 'w');
  for (let off = 0; off < SIZE; off += 16 << 20) writeSync(fd, randomBytes(16 << 20));
  closeSync(fd);
  const up = await run('nbdcopy', [src, pair.uri], { timeoutMs: 120_000 });
  assert.equal(up.code, 0, up.stderr);
  const back = join(pair.rem.dir, 'back.bin');
  writeFileSync(back, '');
  const down = await run('nbdcopy', [pair.uri, back], { timeoutMs: 120_000 });
  assert.equal(down.code, 0, down.stderr);
  const want = await sha256(src);
  assert.equal(await sha256(back), want, 'copied out equals the source');
  assert.equal(await sha256(pair.disk, SIZE), want, "export's backing file equals the source");
});
