// The NBD endpoint's one validation chokepoint, without a socket: a table of requests and the
// errno each gets (null = run it), against a target's size and permissions as they are now.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmd, CmdFlag, MAX_PAYLOAD } from '../../src/protocol/nbd.js';
import type { RequestMessage } from '../../src/protocol/nbd-decoder.js';
import { blockOpOf, validateRequest, type Agreed } from '../../src/engine/remote/nbd-validate.js';

const SIZE = 1 << 20;
type Perms = 'r' | 'w' | 'rw';
const NONE: Agreed = { structured: true, fastZero: false, allocationContext: null };
const BOTH: Agreed = { structured: true, fastZero: true, allocationContext: 1 };
const target = (permissions: Perms = 'rw') => ({ size: () => SIZE, permissions: () => permissions });

function req(type: number, offset: number, length: number, flags = 0): RequestMessage {
  const payload = type === Cmd.WRITE ? Buffer.alloc(length) : null;
  return { kind: 'request', type, flags, offset, length, cookie: Buffer.alloc(8), payload };
}

const cases: [string, RequestMessage, Perms, string | null][] = [
  ['read in range', req(Cmd.READ, 0, 4096), 'rw', null],
  ['read up to the end', req(Cmd.READ, SIZE - 1, 1), 'rw', null],
  ['read with FUA', req(Cmd.READ, 0, 1, CmdFlag.FUA), 'rw', null],
  ['write with FUA', req(Cmd.WRITE, 0, 512, CmdFlag.FUA), 'rw', null],
  ['flush with reserved fields filled in', req(Cmd.FLUSH, 123, 456, CmdFlag.FUA), 'rw', null],
  ['flush on a read-only target', req(Cmd.FLUSH, 0, 0), 'r', null],
  ['empty trim at the end', req(Cmd.TRIM, SIZE, 0), 'rw', null],
  ['write-zeroes NO_HOLE|FUA', req(Cmd.WRITE_ZEROES, 0, 512, CmdFlag.NO_HOLE | CmdFlag.FUA), 'rw', null],
  ['unknown command', req(42, 0, 512), 'rw', 'EINVAL'],
  ['CACHE (not advertised)', req(Cmd.CACHE, 0, 512), 'rw', 'EINVAL'],
  ['DISC is not a block op', req(Cmd.DISC, 0, 0), 'rw', 'EINVAL'],
  ['DF on read (not advertised)', req(Cmd.READ, 0, 512, CmdFlag.DF), 'rw', 'EINVAL'],
  ['NO_HOLE on write', req(Cmd.WRITE, 0, 4, CmdFlag.NO_HOLE), 'rw', 'EINVAL'],
  ['unknown flag bit on flush', req(Cmd.FLUSH, 0, 0, 0x8000), 'rw', 'EINVAL'],
  ['zero-length read', req(Cmd.READ, 0, 0), 'rw', 'EINVAL'],
  ['zero-length write', req(Cmd.WRITE, 0, 0), 'rw', 'EINVAL'],
  ['read over the max payload', req(Cmd.READ, 0, MAX_PAYLOAD + 1), 'rw', 'EINVAL'],
  ['write on a read-only target', req(Cmd.WRITE, 0, 3), 'r', 'EPERM'],
  ['trim on a read-only target', req(Cmd.TRIM, 0, 4096), 'r', 'EPERM'],
  ['read on a write-only target', req(Cmd.READ, 0, 4), 'w', 'EPERM'],
  ['read past the end', req(Cmd.READ, SIZE - 512, 1024), 'rw', 'EINVAL'],
  ['trim past the end', req(Cmd.TRIM, SIZE, 1), 'rw', 'EINVAL'],
  ['write past the end', req(Cmd.WRITE, SIZE, 3), 'rw', 'ENOSPC'],
  ['write-zeroes past the end', req(Cmd.WRITE_ZEROES, SIZE - 1, 2), 'rw', 'ENOSPC'],
  ['read-only beats past the end', req(Cmd.WRITE, SIZE, 3), 'r', 'EPERM'],
];

test('each request gets the errno picked for it, with a reason naming the command', () => {
  for (const [what, r, perms, errno] of cases) {
    const refusal = validateRequest(r, target(perms), NONE);
    assert.equal(refusal?.errno ?? null, errno, what);
    if (refusal !== null && blockOpOf(r.type) !== undefined) assert.match(refusal.reason, /NBD_CMD_|read-only|write-only|payload/, what);
  }
});

const agreedCases: [string, RequestMessage, Perms, Agreed, string | null][] = [
  ['block status without a context', req(Cmd.BLOCK_STATUS, 0, 512), 'rw', NONE, 'EINVAL'],
  ['block status with base:allocation', req(Cmd.BLOCK_STATUS, 0, SIZE), 'rw', BOTH, null],
  ['block status REQ_ONE', req(Cmd.BLOCK_STATUS, 0, 512, CmdFlag.REQ_ONE), 'rw', BOTH, null],
  ['block status on a read-only target', req(Cmd.BLOCK_STATUS, 0, 512), 'r', BOTH, null],
  ['block status on a write-only target', req(Cmd.BLOCK_STATUS, 0, 512), 'w', BOTH, 'EPERM'],
  ['zero-length block status', req(Cmd.BLOCK_STATUS, 0, 0), 'rw', BOTH, 'EINVAL'],
  ['block status past the end', req(Cmd.BLOCK_STATUS, SIZE - 512, 1024), 'rw', BOTH, 'EINVAL'],
  ['block status FUA', req(Cmd.BLOCK_STATUS, 0, 512, CmdFlag.FUA), 'rw', BOTH, 'EINVAL'],
  ['REQ_ONE on read', req(Cmd.READ, 0, 512, CmdFlag.REQ_ONE), 'rw', BOTH, 'EINVAL'],
  ['FAST_ZERO not advertised', req(Cmd.WRITE_ZEROES, 0, 512, CmdFlag.FAST_ZERO), 'rw', NONE, 'EINVAL'],
  ['FAST_ZERO|NO_HOLE advertised', req(Cmd.WRITE_ZEROES, 0, 512, CmdFlag.FAST_ZERO | CmdFlag.NO_HOLE), 'rw', BOTH, null],
  ['FAST_ZERO on trim', req(Cmd.TRIM, 0, 512, CmdFlag.FAST_ZERO), 'rw', BOTH, 'EINVAL'],
];

test('what negotiation agreed decides BLOCK_STATUS and FAST_ZERO', () => {
  for (const [what, r, perms, agreed, errno] of agreedCases) {
    assert.equal(validateRequest(r, target(perms), agreed)?.errno ?? null, errno, what);
  }
});
