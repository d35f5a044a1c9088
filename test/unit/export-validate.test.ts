// The export's one validation chokepoint: a table of requests and the verdict each gets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Access, Cmd, Flag, Op, type FrameHeader } from '../../src/protocol/wire.js';
import { accessNeeded, validateIo, type ValidateEnv } from '../../src/engine/export/validate.js';

const SIZE = 1024 * 1024;
const RW = Access.READ | Access.WRITE;
const env = (over: Partial<ValidateEnv> = {}): ValidateEnv => ({ size: SIZE, maxRequest: 65536, access: RW, overtaken: false, ...over });

function io(op: number, offset: number, length: number, extra: Partial<FrameHeader> = {}): FrameHeader {
  return {
    cmd: Cmd.IO, op, flags: 0, status: 0, length, id: 1, offset, ackedBelow: 0,
    payloadLength: op === Op.WRITE ? length : 0, tagLength: 0, ...extra,
  };
}

type Expect = 'ok' | 'close' | `E${string}`; // E… = errno
const cases: [string, FrameHeader, ValidateEnv, Expect][] = [
  ['read in range', io(Op.READ, 0, 4096), env(), 'ok'],
  ['read up to the end', io(Op.READ, SIZE - 4096, 4096), env(), 'ok'],
  ['write in range', io(Op.WRITE, 512, 512), env(), 'ok'],
  ['write with FUA', io(Op.WRITE, 0, 512, { flags: Flag.FUA }), env(), 'ok'],
  ['write with REPLAY|FUA', io(Op.WRITE, 0, 512, { flags: Flag.FUA | Flag.REPLAY }), env(), 'ok'],
  ['flush', io(Op.FLUSH, 0, 0), env(), 'ok'],
  ['flush read-only', io(Op.FLUSH, 0, 0), env({ access: Access.READ }), 'ok'],
  ['trim', io(Op.TRIM, 0, SIZE), env(), 'ok'],
  ['write-zeroes beyond max request (no payload)', io(Op.WRITE_ZEROES, 0, SIZE), env(), 'ok'],
  ['unknown op', io(9, 0, 512), env(), 'EINVAL'],
  ['op NONE', io(Op.NONE, 0, 0), env(), 'EINVAL'],
  ['unknown flag', io(Op.READ, 0, 512, { flags: 0x80 }), env(), 'EINVAL'],
  ['read past end', io(Op.READ, SIZE - 512, 1024), env(), 'EINVAL'],
  ['read offset past end', io(Op.READ, SIZE + 1, 1), env(), 'EINVAL'],
  ['write past end', io(Op.WRITE, SIZE - 512, 1024), env(), 'ENOSPC'],
  ['write-zeroes past end', io(Op.WRITE_ZEROES, SIZE, 1), env(), 'ENOSPC'],
  ['trim past end', io(Op.TRIM, SIZE, 1), env(), 'EINVAL'],
  ['offset near 2^53 does not wrap', io(Op.READ, 2 ** 53 - 1, 4096), env(), 'EINVAL'],
  ['zero-length read', io(Op.READ, 0, 0), env(), 'EINVAL'],
  ['zero-length write', io(Op.WRITE, 0, 0), env(), 'EINVAL'],
  ['read over max request', io(Op.READ, 0, 65537), env(), 'EINVAL'],
  ['write over max request', io(Op.WRITE, 0, 65537), env(), 'EINVAL'],
  ['write without w', io(Op.WRITE, 0, 512), env({ access: Access.READ }), 'EPERM'],
  ['write-zeroes without w', io(Op.WRITE_ZEROES, 0, 512), env({ access: Access.READ }), 'EPERM'],
  ['trim without w', io(Op.TRIM, 0, 512), env({ access: Access.READ }), 'EPERM'],
  ['read without r', io(Op.READ, 0, 512), env({ access: Access.WRITE }), 'EPERM'],
  ['read after revocation', io(Op.READ, 0, 512), env({ access: 0 }), 'EPERM'],
  ['flush after revocation', io(Op.FLUSH, 0, 0), env({ access: 0 }), 'EPERM'],
  ['permission checked before range', io(Op.WRITE, SIZE, 512), env({ access: Access.READ }), 'EPERM'],
  ['write payload shorter than length', io(Op.WRITE, 0, 512, { payloadLength: 100 }), env(), 'close'],
  ['read carrying a payload', io(Op.READ, 0, 512, { payloadLength: 512 }), env(), 'close'],
  ['empty export: any read is out of range', io(Op.READ, 0, 1), env({ size: 0 }), 'EINVAL'],
  ['digest in range', io(Op.DIGEST, 4096, 8192), env(), 'ok'],
  ['digest up to max request', io(Op.DIGEST, 0, 65536), env(), 'ok'],
  ['digest read-only', io(Op.DIGEST, 0, 512), env({ access: Access.READ }), 'ok'],
  ['digest with REPLAY', io(Op.DIGEST, 0, 512, { flags: Flag.REPLAY }), env(), 'ok'],
  ['zero-length digest', io(Op.DIGEST, 0, 0), env(), 'EINVAL'],
  ['digest over max request', io(Op.DIGEST, 0, 65537), env(), 'EINVAL'],
  ['digest past end', io(Op.DIGEST, SIZE - 512, 1024), env(), 'EINVAL'],
  ['digest offset past end', io(Op.DIGEST, SIZE + 1, 1), env(), 'EINVAL'],
  ['digest without r', io(Op.DIGEST, 0, 512), env({ access: Access.WRITE }), 'EPERM'],
  ['digest after revocation', io(Op.DIGEST, 0, 512), env({ access: 0 }), 'EPERM'],
  ['digest carrying a payload', io(Op.DIGEST, 0, 512, { payloadLength: 32 }), env(), 'close'],
  ['op 8 is unknown', io(8, 0, 512), env(), 'EINVAL'],
  ['block status in range', io(Op.BLOCK_STATUS, 0, SIZE), env(), 'ok'],
  ['block status past max request (it answers a prefix)', io(Op.BLOCK_STATUS, 0, 65537), env(), 'ok'],
  ['block status read-only', io(Op.BLOCK_STATUS, 0, 512), env({ access: Access.READ }), 'ok'],
  ['block status without r', io(Op.BLOCK_STATUS, 0, 512), env({ access: Access.WRITE }), 'EPERM'],
  ['zero-length block status', io(Op.BLOCK_STATUS, 0, 0), env(), 'EINVAL'],
  ['block status past end', io(Op.BLOCK_STATUS, SIZE - 512, 1024), env(), 'EINVAL'],
  ['block status carrying a payload', io(Op.BLOCK_STATUS, 0, 512, { payloadLength: 8 }), env(), 'close'],
  ['write-zeroes with NO_HOLE and FAST_ZERO', io(Op.WRITE_ZEROES, 0, 512, { flags: Flag.NO_HOLE | Flag.FAST_ZERO }), env(), 'ok'],
  ['write with NO_HOLE', io(Op.WRITE, 0, 512, { flags: Flag.NO_HOLE, payloadLength: 512 }), env(), 'EINVAL'],
  ['trim with FAST_ZERO', io(Op.TRIM, 0, 512, { flags: Flag.FAST_ZERO }), env(), 'EINVAL'],
  ['write with the mirror taken over', io(Op.WRITE, 0, 512), env({ overtaken: true }), 'EPERM'],
  ['trim with the mirror taken over', io(Op.TRIM, 0, 512), env({ overtaken: true }), 'EPERM'],
  ['write-zeroes with the mirror taken over', io(Op.WRITE_ZEROES, 0, 512), env({ overtaken: true }), 'EPERM'],
  ['read with the mirror taken over', io(Op.READ, 0, 512), env({ overtaken: true }), 'ok'],
  ['digest with the mirror taken over', io(Op.DIGEST, 0, 512), env({ overtaken: true }), 'ok'],
  ['flush with the mirror taken over', io(Op.FLUSH, 0, 0), env({ overtaken: true }), 'ok'],
];

for (const [name, h, e, expect] of cases) {
  test(`validate: ${name} → ${expect}`, () => {
    const v = validateIo(h, e);
    if (expect === 'ok') {
      assert.deepEqual(v, { ok: true });
    } else if (expect === 'close') {
      assert.equal(v.ok, false);
      assert.equal(!v.ok && v.close, true);
      assert.match(!v.ok ? v.reason : '', /bad frame/);
    } else {
      assert.equal(v.ok, false);
      assert.equal(!v.ok && v.close, false);
      assert.equal(!v.ok ? v.errno : null, expect);
      assert.ok(!v.ok && v.reason.length > 0);
    }
  });
}

test('accessNeeded: a DIGEST needs read access, like a READ', () => {
  assert.equal(accessNeeded(Op.DIGEST), Access.READ);
  assert.equal(accessNeeded(Op.DIGEST), accessNeeded(Op.READ));
});
