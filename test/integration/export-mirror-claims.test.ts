// One writer per mirror, at the export: a HELLO with a newer claim on a mirror is accepted and
// from then on the older claim's connection gets EPERM for every write-type request while its
// reads and digests still work; a fresh HELLO with the older session is refused EPERM naming the
// mirror, the session offered and the highest seen. Another mirror and a client without a claim
// are not affected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Feature, Op } from '../../src/protocol/wire.js';
import { fixture, RawClient, E, pattern } from '../helpers/export-fixture.js';

const uuid = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');

test('export: a newer mirror claim fences the older one\'s writes and refuses its HELLO', async (t) => {
  const f = await fixture();
  t.after(() => f.stop());
  const older = await RawClient.connect(f.port);
  t.after(() => older.close());
  const r1 = await older.hello({ mirrorClaim: { uuid, session: 5n } });
  assert.equal(r1.status, 0, r1.message ?? '');
  assert.equal(r1.reply!.features & Feature.MIRROR_CLAIM, Feature.MIRROR_CLAIM, 'the export says it enforces claims');
  assert.equal((await older.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, 0, 'alone, it writes');

  const newer = await RawClient.connect(f.port);
  t.after(() => newer.close());
  assert.equal((await newer.hello({ mirrorClaim: { uuid, session: 6n } })).status, 0, 'the newer assembly is accepted');

  assert.equal((await older.io(Op.WRITE, 0, 512, { data: pattern(2, 512) })).status, E('EPERM'), 'older write refused');
  assert.equal((await older.io(Op.TRIM, 0, 512)).status, E('EPERM'));
  assert.equal((await older.io(Op.WRITE_ZEROES, 0, 512)).status, E('EPERM'));
  const read = await older.io(Op.READ, 0, 512);
  assert.equal(read.status, 0, 'older reads still work');
  assert.deepEqual(read.payload, pattern(1, 512), 'the refused write did not land');
  assert.equal((await older.io(Op.DIGEST, 0, 512)).status, 0, 'older digests still work');
  assert.equal(older.closed, false, 'the connection stays');

  assert.equal((await newer.io(Op.WRITE, 0, 512, { data: pattern(3, 512) })).status, 0, 'the newer one writes');

  const late = await RawClient.connect(f.port);
  t.after(() => late.close());
  const r3 = await late.hello({ mirrorClaim: { uuid, session: 5n } });
  assert.equal(r3.status, E('EPERM'));
  assert.match(r3.message!, /^taken-over: /);
  assert.match(r3.message!, /mirror 01234567-89ab-cdef-0123-456789abcdef/);
  assert.match(r3.message!, /session 6\b/, 'names the highest seen');
  assert.match(r3.message!, /offers session 5\b/, 'names the session offered');
  await late.closedP;

  // the same session again (a reconnect of the same assembly) is accepted
  const again = await RawClient.connect(f.port);
  t.after(() => again.close());
  assert.equal((await again.hello({ mirrorClaim: { uuid, session: 6n } })).status, 0);
  // another mirror, and a client without a claim, are not affected
  const other = await RawClient.connect(f.port);
  t.after(() => other.close());
  assert.equal((await other.hello({ mirrorClaim: { uuid: randomBytes(16), session: 1n } })).status, 0);
  assert.equal((await other.io(Op.WRITE, 4096, 512, { data: pattern(4, 512) })).status, 0);
  const plain = await RawClient.connect(f.port);
  t.after(() => plain.close());
  assert.equal((await plain.hello()).status, 0);
  assert.equal((await plain.io(Op.WRITE, 8192, 512, { data: pattern(5, 512) })).status, 0);
});
