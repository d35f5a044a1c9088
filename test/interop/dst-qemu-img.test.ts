// qemu-img convert into dst, then qemu-img compare against the source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPair } from '../helpers/cluster.js';
import { requireTool, run } from '../helpers/tools.js';

test('qemu-img convert + compare through dst', async (t) => {
  if (!requireTool(t, 'qemu-img', 'qemu-utils')) return;
  const size = 32 * 1024 * 1024;
  const pair = await startPair(t, { size });
  const src = join(pair.rem.dir, 'src.raw');
  // mixed content: random, zero runs, so qemu-img exercises write and zero paths
  const data = Buffer.alloc(size);
  for (let off = 0; off < size; off += 2 << 20) randomBytes(1 << 20).copy(data, off);
  writeFileSync(src, data);
  const conv = await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, pair.uri], { timeoutMs: 60_000 });
  assert.equal(conv.code, 0, conv.stderr);
  const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, pair.uri], { timeoutMs: 60_000 });
  assert.equal(cmp.code, 0, cmp.stdout + cmp.stderr);
  assert.match(cmp.stdout, /Images are identical/);
});
