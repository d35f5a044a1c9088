// The real nbdinfo (libnbd) against the NBD endpoint over a memory target with known data:
// base:allocation is offered, `nbdinfo --map` prints the disk's data and holes exactly, and
// can_fast_zero follows the target. Skips naming libnbd-bin when nbdinfo is missing (fails under CI).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/util/log.js';
import { startNbdEndpoint, type NbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import { requireTool } from '../helpers/tools.js';
import { createMemoryTarget, type MemoryTarget, type MemoryTargetOptions } from '../helpers/memory-target.js';

const run = promisify(execFile);
const KiB = 1024;
const MiB = 1024 * KiB;

async function serve(t: TestContext, opts: MemoryTargetOptions): Promise<{ target: MemoryTarget; ep: NbdEndpoint }> {
  const dir = await mkdtemp(join(tmpdir(), 'dst-nbd-map-'));
  const target = createMemoryTarget({ name: 'vol', ...opts });
  const ep = await startNbdEndpoint({ target, socketPath: join(dir, 'vol.sock'), tcp: null, log: silentLogger });
  t.after(async () => {
    await ep.close({ force: true });
    await rm(dir, { recursive: true, force: true });
  });
  return { target, ep };
}

/** nbdinfo without blocking the event loop (the endpoint lives in this process). */
async function nbdinfo(...args: string[]): Promise<string> {
  return (await run('nbdinfo', args, { timeout: 20_000 })).stdout;
}

test('nbdinfo --map: the memory disk\'s data and holes, exactly; base:allocation offered', { timeout: 30_000 }, async (t) => {
  if (!requireTool(t, 'nbdinfo', 'libnbd-bin')) return;
  const s = await serve(t, { size: MiB });
  s.target.data.fill(0xa5, 0, 64 * KiB);
  s.target.data[192 * KiB + 100] = 1;
  s.target.data.fill(0x5a, MiB - 8 * KiB, MiB - 4 * KiB);
  assert.equal(await nbdinfo('--map', s.ep.uri), [
    '         0       65536    0  data',
    '     65536      131072    3  hole,zero',
    '    196608        4096    0  data',
    '    200704      839680    3  hole,zero',
    '   1040384        4096    0  data',
    '   1044480        4096    3  hole,zero',
    '',
  ].join('\n'));
  const info = JSON.parse(await nbdinfo('--json', s.ep.uri)) as { exports: { contexts: string[]; can_fast_zero: boolean }[] };
  assert.deepEqual(info.exports[0]!.contexts, ['base:allocation']);
  assert.equal(info.exports[0]!.can_fast_zero, false);
});

test('nbdinfo: can_fast_zero when the target honours FAST_ZERO; a read-only export maps too', { timeout: 30_000 }, async (t) => {
  if (!requireTool(t, 'nbdinfo', 'libnbd-bin')) return;
  const fast = await serve(t, { size: MiB, fastZero: true });
  const info = JSON.parse(await nbdinfo('--json', fast.ep.uri)) as { exports: { can_fast_zero: boolean }[] };
  assert.equal(info.exports[0]!.can_fast_zero, true);

  const ro = await serve(t, { size: 64 * KiB, permissions: 'r' });
  ro.target.data.fill(1, 32 * KiB);
  assert.equal(await nbdinfo('--map', ro.ep.uri), '         0       32768    3  hole,zero\n     32768       32768    0  data\n');
});
