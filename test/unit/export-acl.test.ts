// Export ACL: longest prefix wins, deny entries, IPv4-mapped peers, empty = nobody.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Access } from '../../src/protocol/wire.js';
import type { AclEntry, Perm } from '../../src/engine/types.js';
import { AclCache, compileAcl, entryAccess, grantAccess, matchAcl } from '../../src/engine/export/acl.js';

const e = (addr: string, perm: Perm): AclEntry => ({ addr, perm, keyFile: null });
const RW = Access.READ | Access.WRITE;

test('acl: empty ACL lets nobody in', () => {
  const acl = compileAcl([]);
  assert.equal(matchAcl(acl, '127.0.0.1'), null);
  assert.equal(grantAccess(RW, matchAcl(acl, '127.0.0.1'), false), 0);
});

test('acl: longest prefix wins, whatever the order', () => {
  const entries = [e('10.0.0.0/8', 'rw'), e('10.1.2.0/24', 'r'), e('10.1.2.3', 'none'), e('0.0.0.0/0', 'r')];
  for (const order of [entries, [...entries].reverse()]) {
    const acl = compileAcl(order);
    assert.equal(matchAcl(acl, '10.9.9.9')?.perm, 'rw');
    assert.equal(matchAcl(acl, '10.1.2.4')?.perm, 'r');
    assert.equal(matchAcl(acl, '10.1.2.3')?.perm, 'none');
    assert.equal(matchAcl(acl, '192.0.2.1')?.perm, 'r');
    assert.equal(matchAcl(acl, '::1'), null, 'IPv4 entries do not match IPv6 peers');
  }
});

test('acl: a deny entry grants nothing', () => {
  const acl = compileAcl([e('127.0.0.0/8', 'rw'), e('127.0.0.1', 'none')]);
  const hit = matchAcl(acl, '127.0.0.1');
  assert.equal(hit?.perm, 'none');
  assert.equal(grantAccess(RW, hit, false), 0);
});

test('acl: IPv4-mapped peers are matched as IPv4', () => {
  const acl = compileAcl([e('127.0.0.1', 'rw'), e('::/0', 'r')]);
  assert.equal(matchAcl(acl, '::ffff:127.0.0.1')?.perm, 'rw');
  assert.equal(matchAcl(acl, '::FFFF:127.0.0.1')?.perm, 'rw');
  assert.equal(matchAcl(acl, '::1')?.perm, 'r');
});

test('acl: IPv6 prefixes', () => {
  const acl = compileAcl([e('fd00::/8', 'r'), e('fd00:1::/32', 'rw')]);
  assert.equal(matchAcl(acl, 'fd00:1::5')?.perm, 'rw');
  assert.equal(matchAcl(acl, 'fd22::5')?.perm, 'r');
  assert.equal(matchAcl(acl, 'fe80::1'), null);
});

test('acl: grant = requested ∩ perm ∩ read-only', () => {
  assert.equal(grantAccess(RW, e('1.2.3.4', 'rw'), false), RW);
  assert.equal(grantAccess(Access.READ, e('1.2.3.4', 'rw'), false), Access.READ);
  assert.equal(grantAccess(RW, e('1.2.3.4', 'r'), false), Access.READ);
  assert.equal(grantAccess(RW, e('1.2.3.4', 'w'), false), Access.WRITE);
  assert.equal(grantAccess(RW, e('1.2.3.4', 'rw'), true), Access.READ);
  assert.equal(grantAccess(RW, e('1.2.3.4', 'w'), true), 0);
  assert.equal(entryAccess(null, false), 0);
});

test('acl: invalid entries are reported and skipped', () => {
  const acl = compileAcl([e('not-an-ip', 'rw'), e('127.0.0.1', 'r')]);
  assert.equal(acl.invalid.length, 1);
  assert.equal(matchAcl(acl, '127.0.0.1')?.perm, 'r');
});

test('acl cache: a swapped ACL array or invalidate() takes effect on the next lookup', () => {
  const bad: string[] = [];
  const cache = new AclCache((entry) => bad.push(entry.addr));
  const a1 = [e('127.0.0.1', 'rw')];
  assert.equal(cache.lookup(a1, '127.0.0.1')?.perm, 'rw');
  const a2 = [e('127.0.0.1', 'r')];
  assert.equal(cache.lookup(a2, '127.0.0.1')?.perm, 'r');
  // mutated in place, then invalidated (configChanged)
  a2[0] = e('127.0.0.1', 'none');
  assert.equal(cache.lookup(a2, '127.0.0.1')?.perm, 'r', 'cached until invalidated');
  cache.invalidate();
  assert.equal(cache.lookup(a2, '::ffff:127.0.0.1')?.perm, 'none');
  assert.equal(cache.lookup([e('x', 'rw')], '127.0.0.1'), null);
  assert.deepEqual(bad, ['x']);
});
