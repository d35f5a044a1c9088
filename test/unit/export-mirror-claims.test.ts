// MirrorClaims (export/mirror-claims.ts): takes that arrive while a save is being written share
// the next save (one write for all of them), each resolves only once its claim is on disk, an
// older claim is refused naming mirror and sessions, and claims of another identity are dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../src/util/log.js';
import { MirrorClaims, claimsPath, holdClaim } from '../../src/engine/export/mirror-claims.js';
import { tmpDir } from '../helpers/tmp.js';

const identity = Buffer.alloc(16, 1);
const mirror = (i: number): Buffer => Buffer.alloc(16, i);

test('mirror claims: concurrent takes share one save and resolve once it is on disk', async (t) => {
  const stateDir = tmpDir(t, 'dst-claims-');
  const claims = await MirrorClaims.load(stateDir, 'vol', identity, silentLogger);
  const takes = Array.from({ length: 10 }, (_, i) => claims.take(holdClaim({ uuid: mirror(i + 1), session: BigInt(i + 1) })));
  const saved = takes.map((r) => ('saved' in r ? r.saved : assert.fail('refused')));
  assert.notEqual(saved[0], saved[1], 'the first save starts at once');
  for (const p of saved.slice(2)) assert.equal(p, saved[1], 'the takes during it share the next save');
  await saved[0];
  const afterFirst = JSON.parse(await readFile(claimsPath(stateDir, 'vol'), 'utf8'));
  assert.equal(Object.keys(afterFirst.claims).length, 1, 'the first save wrote what there was when it started');
  await Promise.all(saved);
  const reloaded = await MirrorClaims.load(stateDir, 'vol', identity, silentLogger);
  assert.equal(reloaded.size, 10);
  for (let i = 0; i < 10; i++) assert.equal(reloaded.overtaken(holdClaim({ uuid: mirror(i + 1), session: BigInt(i) })), true);

  const refused = reloaded.take(holdClaim({ uuid: mirror(3), session: 2n }));
  assert.ok('refused' in refused);
  assert.equal(refused.refused, 'taken-over: mirror 03030303-0303-0303-0303-030303030303 on export vol belongs to session 3,'
    + ' this HELLO offers session 2');
  const fresh = await MirrorClaims.load(stateDir, 'vol', randomBytes(16), silentLogger);
  assert.equal(fresh.size, 0, 'another identity (another disk) starts with no claims');
  assert.ok(join(stateDir, 'exports', 'vol.claims') === claimsPath(stateDir, 'vol'));
});
