// Linear and stripe devices over two export engines: every block lands at the offset the layout
// computes on the leg it computes (read straight from each leg's backing file), requests that
// straddle leg and chunk boundaries are answered once and read back, FLUSH reaches both legs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEngine } from '../helpers/engine.js';
import { layoutDevice as device, readFileAt, startLegs } from '../helpers/legs.js';
import { blockContent, checkBlock } from '../helpers/blocks.js';
import { assertNodeShow } from '../helpers/shapes.js';
import type { NodeShow } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const B = 4096;

test('linear: size is the sum, blocks land on the computed leg, a write straddling the legs is answered once', async (t) => {
  const { legs } = await startLegs(t, [8 * M, 12 * M]);
  const { show, nbd, rem } = await device(t, legs, ['--layout', 'linear']);
  assertNodeShow(show as unknown as Record<string, unknown>);
  assert.equal(show.layout, 'linear');
  assert.equal(show.size, 20 * M);
  assert.equal(show.remote, null);
  assert.deepEqual(show.legs!.map((l) => [l.index, l.state, l.size]), [[0, 'in-sync', 8 * M], [1, 'in-sync', 12 * M]]);
  // 16 blocks either side of the boundary, as one straddling write
  const start = 8 * M - 16 * B;
  const data = Buffer.concat(Array.from({ length: 32 }, (_, i) => blockContent(start / B + i, 1)));
  await nbd.write(start, data);
  await nbd.flush();
  for (let i = 0; i < 32; i++) {
    const dev = start + i * B;
    const [file, at] = dev < 8 * M ? [legs[0]!.file, dev] : [legs[1]!.file, dev - 8 * M];
    assert.equal(checkBlock(readFileAt(file, at, B), dev / B).version, 1, `block ${dev / B} on its leg`);
  }
  const back = await nbd.read(start, data.length);
  assert.ok(back.equals(data));
  const after = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.ok(after.legs!.every((l) => l.stats.writes > 0), 'both legs were written');
});

test('stripe: chunk i on leg i mod 2, writes straddling chunks land where the map says', async (t) => {
  const chunk = 64 * K;
  const { legs } = await startLegs(t, [8 * M, 8 * M + 10 * K]);
  const { show, nbd } = await device(t, legs, ['--layout', 'stripe', '--chunk', '64K']);
  assert.equal(show.layout, 'stripe');
  assert.equal(show.chunk, chunk);
  assert.equal(show.size, 16 * M);
  // 1 MiB starting half a chunk in: every write crosses chunk boundaries
  const start = chunk / 2;
  const n = 256;
  const data = Buffer.concat(Array.from({ length: n }, (_, i) => blockContent(start / B + i, 2)));
  await nbd.write(start, data, true);
  for (let i = 0; i < n; i++) {
    const dev = start + i * B;
    const c = Math.floor(dev / chunk);
    const at = Math.floor(c / 2) * chunk + (dev % chunk);
    assert.equal(checkBlock(readFileAt(legs[c % 2]!.file, at, B), dev / B).version, 2, `block ${dev / B} on leg ${c % 2}`);
  }
  const back = await nbd.read(start, data.length);
  assert.ok(back.equals(data));
});

test('bad layouts are refused, naming what is wrong', async (t) => {
  const rem = await startEngine(t);
  const chunk = await rem.dstFail(['node', 'add', 'v', '--layout', 'stripe', '--chunk', '3000', '--remote', '127.0.0.1:1/a', '--remote', '127.0.0.1:2/b'], 2);
  assert.match(chunk.stderr, /--chunk/);
  const one = await rem.dstFail(['node', 'add', 'v', '--layout', 'stripe', '--remote', '127.0.0.1:1/a'], 2);
  assert.match(one.stderr, /at least two --remote/);
  const many = await rem.dstFail(['node', 'add', 'v', '--remote', '127.0.0.1:1/a', '--remote', '127.0.0.1:2/b'], 2);
  assert.match(many.stderr, /--layout/);
  const twice = await rem.dstFail(['node', 'add', 'v', '--layout', 'linear', '--remote', '127.0.0.1:1/a', '--remote', '127.0.0.1:1/a']);
  assert.match(twice.stderr, /leg 0 and leg 1 are the same export/);
});

test('two legs that are one export are refused when the node starts, naming both', async (t) => {
  const { legs } = await startLegs(t, [8 * M]);
  const addr = legs[0]!.listen; // 127.0.0.1:PORT/leg0
  const rem = await startEngine(t);
  // the same export by two names for the host: 127.0.0.1 and localhost
  await rem.dstJson(['node', 'add', 'vol', '--layout', 'linear', '--remote', addr, '--remote', addr.replace('127.0.0.1', 'localhost')]);
  const r = await rem.dstFail(['node', 'start', 'vol', '--wait', '10s']);
  assert.match(r.stderr, /failed|duplicate-leg/);
  const show = await rem.dstJson<NodeShow>(['node', 'show', 'vol']);
  assert.equal(show.state, 'failed');
  assert.equal(show.reason, 'duplicate-leg');
  const log = await import('node:fs/promises').then((fs) => fs.readFile(rem.logFile, 'utf8'));
  assert.match(log, /leg 0 \(127\.0\.0\.1:\d+\) and leg 1 \(localhost:\d+\) are the same export/);
});
