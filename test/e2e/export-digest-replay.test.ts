// A replayed DIGEST is run again, like a READ: the export's dedup never records it, so a REPLAY of
// the same id on a new connection of the session answers the digest of the bytes as they are now
// (never a bare recorded status without its 32 bytes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { startLegs, readFileAt } from '../helpers/legs.js';
import { WireClient } from '../helpers/wire-client.js';
import { Flag, Op } from '../../src/protocol/wire.js';

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

test('a replayed DIGEST runs again on the new connection of the session', async (t) => {
  const { legs: [leg] } = await startLegs(t, [4 * 1024 * 1024]);
  const addr = leg!.listen.split('/')[0]!;
  const sessionId = randomBytes(16);

  const first = await WireClient.connect(addr);
  t.after(() => first.close());
  assert.equal((await first.hello({ sessionId })).status, 0);
  const one = await first.io(Op.DIGEST, 7, 0, 8192);
  assert.equal(one!.status, 0);
  assert.deepEqual(one!.payload, sha256(Buffer.alloc(8192)));
  const data = randomBytes(8192);
  assert.equal((await first.io(Op.WRITE, 8, 0, 8192, data))!.status, 0);

  // the same session again: the old connection is fenced, then id 7 is replayed
  const second = await WireClient.connect(addr);
  t.after(() => second.close());
  assert.equal((await second.hello({ sessionId })).status, 0);
  const again = await second.io(Op.DIGEST, 7, 0, 8192, null, Flag.REPLAY);
  assert.equal(again!.status, 0);
  assert.equal(again!.payload.length, 32, 'answered with a digest, not from a record');
  assert.deepEqual(again!.payload, sha256(data));
  assert.deepEqual(again!.payload, sha256(readFileAt(leg!.file, 0, 8192)));
  // a replayed WRITE of the same session is still answered from its record
  assert.equal((await second.io(Op.WRITE, 8, 0, 8192, randomBytes(8192), Flag.REPLAY))!.status, 0);
  assert.deepEqual(readFileAt(leg!.file, 0, 8192), data, 'the recorded WRITE did not run twice');
});
