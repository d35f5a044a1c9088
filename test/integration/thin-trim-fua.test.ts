// A TRIM with FUA is durable before it is answered (issue 16): the file backend fdatasyncs after
// the punch (and a plain TRIM does not); the NBD backend forwards FUA on the TRIM to a server that
// advertises FUA, and sends a FLUSH after it to one that does not (nbdkit's log filter, nearest the
// client, records what the server was sent).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeClock } from '../../src/util/clock.js';
import { createLogger } from '../../src/util/log.js';
import { DEFAULT_POLICY } from '../../src/engine/policy.js';
import { FileBackend } from '../../src/engine/export/backend.js';
import { NbdBackend } from '../../src/engine/export/nbd-backend.js';
import { startNbdServer } from '../helpers/nbd-server.js';
import { M, requirePunchHole, thinFile } from '../helpers/thin.js';
import { requireTool, waitFor } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

test('file backend: TRIM with FUA fdatasyncs after the punch, a plain TRIM does not', async (t) => {
  if (!(await requirePunchHole(t))) return;
  const b = await FileBackend.open(thinFile(t, 16 * M, [0], 4 * M), false);
  t.after(() => b.close());
  const before = b.syncCount;
  await b.trim(0, M, false);
  assert.equal(b.syncCount, before, 'a plain TRIM is not synced');
  await b.trim(M, M, true);
  assert.equal(b.syncCount, before + 1, 'a TRIM with FUA is synced before it resolves');
});

/** The commands nbdkit's log filter recorded, as "Trim fua=1", "Flush", … */
function commands(logFile: string): string[] {
  return readFileSync(logFile, 'utf8').split('\n').flatMap((l) => {
    const m = /connection=\d+ (Trim|Flush|Write|Zero) id=\d+ .*?(?:fua=(\d))?(?: \.\.\.)?$/.exec(l);
    return m ? [m[2] === undefined ? m[1]! : `${m[1]} fua=${m[2]}`] : [];
  });
}

for (const fua of [true, false]) {
  test(`NBD backend: TRIM with FUA to a server ${fua ? 'with' : 'without'} FUA → ${fua ? 'FUA forwarded' : 'TRIM then FLUSH'}`, async (t) => {
    if (!requireTool(t, 'nbdkit', 'nbdkit')) return;
    const dir = tmpDir(t);
    const sock = join(dir, 'nbdkit.sock'), logFile = join(dir, 'log');
    // the fua filter without fuamode advertises no FUA; fuamode=emulate advertises it
    await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, '--filter=log', '--filter=fua', 'memory', '16M', `logfile=${logFile}`,
      ...(fua ? ['fuamode=emulate'] : [])], sock);
    const backend = await NbdBackend.open(`nbd+unix:///?socket=${sock}`, { clock: new FakeClock(), log: createLogger('error', 'text', () => {}), policy: () => DEFAULT_POLICY });
    t.after(() => backend.close());
    await backend.trim(0, 64 * 1024, false);
    await backend.trim(64 * 1024, 64 * 1024, true);
    const want = fua ? ['Trim fua=0', 'Trim fua=1'] : ['Trim fua=0', 'Trim fua=0', 'Flush'];
    await waitFor('nbdkit to log the commands', () => commands(logFile).length >= want.length);
    assert.deepEqual(commands(logFile), want);
  });
}
