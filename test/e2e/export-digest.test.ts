// DIGEST (op 7) against a real export engine, over raw wire frames: the HELLO_REPLY advertises it,
// the answer is the SHA-256 of the backing file's bytes in the range (written data and sparse
// zeros alike), a range past the export size gets EINVAL, and no DIGEST counts as bytes read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import { startLegs, readFileAt } from '../helpers/legs.js';
import { WireClient } from '../helpers/wire-client.js';
import { Feature, Op } from '../../src/protocol/wire.js';
import type { NodeShow } from '../../src/engine/types.js';

const MiB = 1024 * 1024;
const SIZE = 8 * MiB;
const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

test('DIGEST answers the SHA-256 of the export\'s bytes; out of range is EINVAL; not counted as bytes read', async (t) => {
  const { exp, legs: [leg] } = await startLegs(t, [SIZE]);
  const c = await WireClient.connect(leg!.listen.split('/')[0]!);
  t.after(() => c.close());
  const hello = await c.hello();
  assert.equal(hello.status, 0, hello.message ?? '');
  assert.equal(hello.reply!.features & Feature.DIGEST, Feature.DIGEST, 'the export advertises DIGEST');

  const data = randomBytes(3 * MiB);
  const w = await c.io(Op.WRITE, 1, MiB - 512, data.length, data);
  assert.equal(w!.status, 0);
  const before = (await exp.dstJson<NodeShow>(['node', 'show', 'leg0'])).stats.bytesRead;

  let id = 10;
  const ranges: [number, number][] = [
    [MiB - 512, data.length], // exactly the written bytes, several 1 MiB pieces
    [0, 5 * MiB + 123], // written bytes and sparse zeros, unaligned end
    [7 * MiB + 1, 4095], // only zeros, unaligned
    [SIZE - 1, 1], // the last byte
  ];
  for (const [offset, length] of ranges) {
    const r = await c.io(Op.DIGEST, id++, offset, length);
    assert.ok(r);
    assert.equal(r.status, 0, `DIGEST ${offset}+${length}`);
    assert.equal(r.op, Op.DIGEST);
    assert.equal(r.payload.length, 32);
    assert.deepEqual(r.payload, sha256(readFileAt(leg!.file, offset, length)), `DIGEST ${offset}+${length} = sha256 of the file`);
  }

  assert.equal((await c.io(Op.DIGEST, id++, SIZE - 512, 1024))!.status, constants.errno.EINVAL, 'past the end');
  assert.equal((await c.io(Op.DIGEST, id++, SIZE + 4096, 1))!.status, constants.errno.EINVAL, 'offset past the end');
  assert.equal((await c.io(Op.DIGEST, id++, 0, 0))!.status, constants.errno.EINVAL, 'zero length');
  const refused = await c.io(Op.DIGEST, id++, SIZE, 512);
  assert.equal(refused!.status, constants.errno.EINVAL);
  assert.equal(refused!.payload.length, 0, 'a refused DIGEST carries no payload');

  const show = await exp.dstJson<NodeShow>(['node', 'show', 'leg0']);
  assert.equal(show.stats.bytesRead, before, 'a DIGEST is not bytes read');
  assert.equal((await c.io(Op.READ, id++, 0, 4096))!.status, 0, 'the connection still serves');
});
