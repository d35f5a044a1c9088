// The highest session seen per mirror survives an export restart (same state dir): after a stop
// and start, and in a new export runtime over the same state dir, the older session is refused.
// A claims file that cannot be parsed refuses the start, naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { claimsPath } from '../../src/engine/export/mirror-claims.js';
import { dir, fixture, makeDisk, RawClient, E } from '../helpers/export-fixture.js';

const uuid = Buffer.alloc(16, 0xab);

async function helloStatus(port: number, session: bigint): Promise<number> {
  const c = await RawClient.connect(port);
  try {
    return (await c.hello({ mirrorClaim: { uuid, session } })).status;
  } finally {
    c.close();
  }
}

test('export: the highest mirror session survives a restart', async (t) => {
  const stateDir = join(dir, 'claims-restart');
  const disk = await makeDisk();
  const a = await fixture({ stateDir, disk });
  t.after(() => a.stop());
  assert.equal(await helloStatus(a.port, 9n), 0);
  await a.rt.stop({ force: false });
  await a.rt.start();
  const port = Number(/:(\d+)$/.exec(a.rt.show().listen!)![1]);
  assert.equal(await helloStatus(port, 8n), E('EPERM'), 'stop and start: still fenced');
  await a.stop();

  const b = await fixture({ stateDir, disk });
  t.after(() => b.stop());
  assert.equal(await helloStatus(b.port, 8n), E('EPERM'), 'a new runtime over the same state dir: still fenced');
  assert.equal(await helloStatus(b.port, 9n), 0);
  assert.equal(await helloStatus(b.port, 10n), 0);
  await b.stop();

  await writeFile(claimsPath(stateDir, 'vol'), '{"identity": tor');
  const c = await fixture({ stateDir, disk, start: false });
  await assert.rejects(c.rt.start(), (err: Error & { code?: string }) => err.code === 'DST_ERR_IDENTITY' && err.message.includes(claimsPath(stateDir, 'vol')));
});
