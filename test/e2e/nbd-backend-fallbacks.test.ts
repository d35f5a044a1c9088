// What an NBD server does not advertise, the export offers the way a file backend without it does
// (issue 17), one nbdkit configuration each: WRITE_ZEROES missing (nozero) → zeroes written as data,
// SEND_FAST_ZERO not offered (a FAST_ZERO sent anyway refused, nothing changed); no extents (noextents) or no structured replies (--no-sr) → the map is all
// data. Each checks data (plain and FUA writes), zeroes and `nbdinfo --map` through dst. (FUA
// missing would need the fua filter's fuamode=none, which nbdkit 1.32 lacks.)
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startPair, type Pair } from '../helpers/cluster.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { NbdClient, NbdError } from '../helpers/nbd-client.js';
import { blocksContent, checkBlocks } from '../helpers/blocks.js';
import { M, nbdinfoMap } from '../helpers/thin.js';
import { requireTools } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const SIZE = 16 * M;
const WRITE_ZEROES = 6, FAST_ZERO = 1 << 4, SEND_FAST_ZERO = 1 << 11, EINVAL = 22;

interface Setup { pair: Pair; c: NbdClient; flags: string }

/** nbdkit memory with `options` before the plugin name. */
async function setup(t: TestContext, options: string[]): Promise<Setup | null> {
  if (!requireTools(t, [['nbdkit', 'nbdkit'], ['nbdinfo', 'libnbd-bin']])) return null;
  const dir = tmpDir(t);
  const sock = join(dir, 'nbdkit.sock');
  const server = await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, ...options, 'memory', '16M'], sock);
  const pair = await startPair(t, { disk: server.uri });
  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  return { pair, c, flags: (await pair.exp.show(pair.exportName)).backend?.flags ?? '' };
}

/** Verified data (plain and FUA) and zeroes through dst. */
async function dataAndZeroes(c: NbdClient): Promise<void> {
  await c.write(0, blocksContent(0, 1, 64));
  await c.write(64 * 4096, blocksContent(64, 1, 16), true);
  assert.deepEqual(checkBlocks(await c.read(0, 80 * 4096), 0), Array(80).fill(1));
  await c.writeZeroes(8 * 4096, 3 * M);
  assert.ok((await c.read(8 * 4096, 3 * M)).equals(Buffer.alloc(3 * M)), 'the zeroed range reads zeroes');
  assert.deepEqual(checkBlocks(await c.read(0, 8 * 4096), 0), Array(8).fill(1), 'what is before it is untouched');
}

const uriOf = (s: Setup): string => `nbd+unix:///?socket=${s.pair.socket}`;

async function allData(s: Setup): Promise<void> {
  assert.deepEqual(await nbdinfoMap(uriOf(s)), [{ offset: 0, length: SIZE, hole: false }], 'without the server\'s extents the map is all data');
}

test('nozero: zeroes written as data, FAST_ZERO not offered', async (t) => {
  const s = await setup(t, ['--filter=nozero']);
  if (s === null) return;
  assert.doesNotMatch(s.flags, /send_write_zeroes/);
  assert.equal(s.c.flags & SEND_FAST_ZERO, 0, 'the remote node does not offer SEND_FAST_ZERO (zeroing would mean writing zeroes)');
  await dataAndZeroes(s.c);
  // a client that sends it anyway is refused as for any flag not negotiated
  const fast = await s.c.raw(WRITE_ZEROES, 0, 4096, null, FAST_ZERO).then(() => null, (err: unknown) => err);
  assert.ok(fast instanceof NbdError && fast.errno === EINVAL, `FAST_ZERO: ${String(fast)}`);
  assert.deepEqual(checkBlocks(await s.c.read(0, 4096), 0), [1], 'the refused FAST_ZERO changed nothing');
  const map = await nbdinfoMap(uriOf(s));
  assert.ok(map.some((e) => e.hole) && map.some((e) => !e.hole), `the server's extents still pass through: ${JSON.stringify(map)}`);
});

test('noextents: data and zeroes served, the map is all data', async (t) => {
  const s = await setup(t, ['--filter=noextents']);
  if (s === null) return;
  await dataAndZeroes(s.c);
  await allData(s);
});

test('--no-sr (simple replies only): data and zeroes served, the map is all data', async (t) => {
  const s = await setup(t, ['--no-sr']);
  if (s === null) return;
  await dataAndZeroes(s.c);
  await allData(s);
});
