// The remote engine of a mirror SIGKILLed under write load and restarted: the activity log says
// which regions were being written, and only those are copied from leg 0 to leg 1 — not the whole
// device. Afterwards the legs are identical and no acknowledged write is lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkVersions, layoutDevice, sameBytes, startLegEngines, startWriteLoad, waitLegStates } from '../helpers/legs.js';
import { NbdClient } from '../helpers/nbd-client.js';
import type { NodeShow } from '../../src/engine/types.js';

const K = 1024;
const M = 1024 * K;
const REGION = 256 * K;

test('mirror: an engine crash resyncs only the active regions', async (t) => {
  const { legs } = await startLegEngines(t, [36 * M, 36 * M]);
  const { nbd, rem } = await layoutDevice(t, legs, ['--layout', 'mirror', '--region', '256K'], [], { ownConfig: true });
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  // writes to 2 MiB spread over the first 8 MiB: at most 8 regions active at once... of 128
  const load = startWriteLoad(nbd, (2 * M) / 4096);
  await new Promise((r) => setTimeout(r, 1000));
  await rem.kill('SIGKILL');
  await load.stop(); // writes in flight at the kill fail: they were never acknowledged
  const acked = new Map(load.versions);

  await rem.restart();
  const m = await rem.waitForLog(/unclean stop: resyncing (\d+) active region/, 20_000);
  const active = Number(m[1]);
  assert.ok(active > 0 && active <= (2 * M) / REGION, `${active} active regions`);
  const show = await waitLegStates(rem, ['in-sync', 'in-sync'], 30_000);
  const copied = show.legs![1]!.stats.resyncedBytes;
  assert.equal(copied, active * REGION, `copied ${copied} bytes for ${active} active regions`);
  t.diagnostic(`${active} active regions after the crash; resync copied ${copied} of ${show.size} bytes`);

  const again = await NbdClient.connect((await rem.dstJson<NodeShow>(['node', 'show', 'vol'])).nbd!.socket);
  t.after(() => again.close());
  await again.flush();
  assert.ok(sameBytes(legs[0]!.file, legs[1]!.file, show.size!), 'legs identical');
  await checkVersions(again, acked, true);
});
