// Requests the export refuses get an errno and the connection stays: out of range, bad flags or
// op, too large, and writes (or anything) the ACL or a read-only export does not grant.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Access, Op } from '../../src/protocol/wire.js';
import { DEFAULT_LIMITS } from '../../src/engine/types.js';
import { SIZE, fixture, RawClient, connected, E, pattern } from '../helpers/export-fixture.js';

test('export: bad requests get an errno and the connection stays', async () => {
  const f = await fixture();
  try {
    const { c } = await connected(f);
    assert.equal((await c.io(Op.WRITE, SIZE - 512, 1024, { data: pattern(1, 1024) })).status, E('ENOSPC'));
    assert.equal((await c.io(Op.WRITE_ZEROES, SIZE, 512)).status, E('ENOSPC'));
    assert.equal((await c.io(Op.READ, SIZE, 512)).status, E('EINVAL'));
    assert.equal((await c.io(Op.TRIM, SIZE - 1, 2)).status, E('EINVAL'));
    assert.equal((await c.io(Op.READ, 0, 0)).status, E('EINVAL'));
    assert.equal((await c.io(Op.READ, 0, 512, { flags: 0x40 })).status, E('EINVAL'), 'unknown flags');
    assert.equal((await c.io(8 as Op, 0, 512)).status, E('EINVAL'), 'unknown op');
    const big = await c.io(Op.READ, 0, DEFAULT_LIMITS.maxRequestCap + 1);
    assert.equal(big.status, E('EINVAL'));
    assert.equal(big.payload.length, 0);
    // still serving on the same connection
    const w = await c.io(Op.WRITE, 0, 512, { data: pattern(9, 512) });
    assert.equal(w.status, 0);
    assert.equal(c.closed, false);
    assert.ok(f.rt.show().stats.failed >= 8);
    c.close();
  } finally {
    await f.stop();
  }
});

test('export: read-only grant; a hand-built WRITE gets EPERM from the export', async () => {
  const f = await fixture({ acl: [{ addr: '127.0.0.1', perm: 'r', keyFile: null }] });
  try {
    const { c, reply } = await connected(f);
    assert.equal(reply.granted, Access.READ);
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, E('EPERM'));
    assert.equal((await c.io(Op.WRITE_ZEROES, 0, 512)).status, E('EPERM'));
    assert.equal((await c.io(Op.READ, 0, 512)).status, 0);
    c.close();
  } finally {
    await f.stop();
  }
  const ro = await fixture({ readonly: true });
  try {
    const { c, reply } = await connected(ro);
    assert.equal(reply.granted, Access.READ, 'read-only export grants r even to an rw entry');
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, E('EPERM'));
    c.close();
  } finally {
    await ro.stop();
  }
});

test('export: a revoked ACL entry (config swapped) → EPERM on the next request', async () => {
  const f = await fixture();
  try {
    const { c } = await connected(f);
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(1, 512) })).status, 0);
    f.holder.config = { ...f.holder.config, acl: [{ addr: '127.0.0.1', perm: 'r', keyFile: null }] };
    f.rt.configChanged();
    assert.equal((await c.io(Op.WRITE, 0, 512, { data: pattern(2, 512) })).status, E('EPERM'));
    assert.equal((await c.io(Op.READ, 0, 512)).status, 0);
    f.holder.config = { ...f.holder.config, acl: [] };
    f.rt.configChanged();
    assert.equal((await c.io(Op.READ, 0, 512)).status, E('EPERM'));
    assert.equal((await c.io(Op.FLUSH, 0, 0)).status, E('EPERM'));
    assert.equal(c.closed, false);
    const c2 = await RawClient.connect(f.port);
    assert.equal((await c2.hello()).status, E('EACCES'), 'new HELLOs refused too');
    c.close();
  } finally {
    await f.stop();
  }
});
