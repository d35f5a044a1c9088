// A request cut into more pieces than the device lets be in flight (max-inflight) still
// completes: the NBD side waits for the device's capacity and is woken when a piece finishes.
// Linear and mirror, writes, reads and a TRIM of the whole device.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockContent } from '../helpers/blocks.js';
import { layoutDevice, startLegs, waitLegStates } from '../helpers/legs.js';

const M = 1024 * 1024;
const B = 4096;

for (const layout of ['linear', 'mirror'] as const) {
  test(`${layout}: a request of 64 pieces with max-inflight 4 completes`, async (t) => {
    const { legs } = await startLegs(t, [12 * M, 12 * M]);
    const { show, nbd, rem } = await layoutDevice(t, legs, ['--layout', layout], ['--max-inflight', '4', '--max-request', '64K']);
    if (layout === 'mirror') await waitLegStates(rem, ['in-sync', 'in-sync']);
    const data = Buffer.concat(Array.from({ length: (4 * M) / B }, (_, i) => blockContent(i, 1)));
    await nbd.write(0, data);
    assert.ok((await nbd.read(0, data.length)).equals(data));
    await nbd.trim(0, show.size!);
    await nbd.flush();
  });
}
