// Issue 16, the "before" figure: with the export's native file ops switched off (DST_NATIVE=0 in
// its engine's environment) a 1 GiB export with 3 MiB of data reports one data extent, so nbdcopy
// of the device reads the whole gibibyte at the export (its `stats.bytesRead`). thin-map-copy is
// the "after": the same export with native ops reads about the data's size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { K, M, exportBytesRead, thinFile } from '../helpers/thin.js';
import { requireTools, runOk } from '../helpers/tools.js';

const G = 1024 * M;
const OFFSETS = [16 * M, 700 * M + 12 * K, G - M];

test('native file ops off: nbdcopy of a 1 GiB thin export reads the whole device at the export', { timeout: 240_000 }, async (t) => {
  if (!requireTools(t, [['nbdcopy', 'libnbd-bin']])) return;
  const disk = thinFile(t, G, OFFSETS, M);
  const pair = await startPair(t, { disk, exportEnv: { DST_NATIVE: '0' } });
  assert.match((await pair.exp.status()).fileOps, /^fallback/, 'the export engine runs without native file ops');

  const before = await exportBytesRead(pair.exp, pair.exportName);
  const r = await runOk('nbdcopy', [pair.uri, 'null:'], { timeoutMs: 180_000 });
  const read = (await exportBytesRead(pair.exp, pair.exportName)) - before;
  const msg = `native file ops off: nbdcopy of the 1 GiB device (3 MiB of data) read ${read} bytes (${(read / M).toFixed(2)} MiB) at the export in ${r.ms} ms`;
  t.diagnostic(msg);
  console.log(`thin-native-off-copy: ${msg}`);
  assert.ok(read >= G, `without extents nbdcopy reads every byte of the device: ${read} of ${G}`);
  assert.ok(read <= G + M, `and each byte about once: ${read}`);
});
