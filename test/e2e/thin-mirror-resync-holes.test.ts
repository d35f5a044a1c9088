// Issue 16: a mirror's resync copies holes as holes. Leg 1 is away (its fault proxy cut) during a
// TRIM; when it returns, the resync copies the TRIM's regions by leg 0's extents (a hole punched,
// not zeroes written), so after it the legs are byte-identical, hold about the same allocated
// blocks, and `nbdinfo --map` through the device shows the hole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutDevice, sameBytes, startLegs, waitLegStates } from '../helpers/legs.js';
import { startProxy } from '../helpers/proxy.js';
import { K, M, allocated, checkCovers, dataAt, dataRanges, nbdinfoMap, requirePunchHole } from '../helpers/thin.js';
import { requireTool } from '../helpers/tools.js';

const DATA: [number, number] = [0, 8 * M];
const TRIM: [number, number] = [2 * M, 4 * M];
/** the legs' allocation may differ by their metadata copies and file system rounding, not by the trimmed range */
const SLACK = 256 * K;

test('mirror resync after a TRIM a leg missed: the legs are identical, holes included', { timeout: 120_000 }, async (t) => {
  if (!requireTool(t, 'nbdinfo', 'libnbd-bin') || !(await requirePunchHole(t))) return;
  const { legs } = await startLegs(t, [40 * M, 40 * M]);
  const [addr, exportName] = legs[1]!.listen.split('/') as [string, string];
  const proxy = await startProxy(t, addr);
  const viaProxy = [legs[0]!, { ...legs[1]!, listen: `${proxy.listen}/${exportName}` }];
  const { nbd, rem, show } = await layoutDevice(t, viaProxy, ['--layout', 'mirror', '--region', '1M'],
    ['--leg-timeout', '1s', '--reconnect-delay', '200ms']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  const size = show.size!;
  await nbd.write(DATA[0], dataAt(...DATA));
  await nbd.flush();

  await proxy.ctl('refuse');
  await proxy.ctl('cut');
  await nbd.trim(...TRIM);
  await nbd.flush();
  await waitLegStates(rem, ['in-sync', 'behind']);
  const missed = allocated(legs[1]!.file) - allocated(legs[0]!.file);
  assert.ok(missed >= TRIM[1] - SLACK, `leg 1 missed the TRIM: it holds ${missed} bytes more than leg 0`);

  await proxy.ctl('accept');
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  await nbd.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, size), 'the legs are byte-identical after the resync');
  const [a0, a1] = legs.map((l) => allocated(l.file)) as [number, number];
  assert.ok(Math.abs(a0 - a1) <= SLACK, `the legs hold about the same allocated bytes: leg 0 ${a0}, leg 1 ${a1}`);

  const map = await nbdinfoMap(show.nbd!.uri);
  checkCovers(map, size, 'nbdinfo --map of the mirror');
  assert.deepEqual(dataRanges(map), [[DATA[0], TRIM[0]], [TRIM[0] + TRIM[1], DATA[1] - TRIM[0] - TRIM[1]]],
    `the map shows the trimmed hole: ${JSON.stringify(map)}`);
});
