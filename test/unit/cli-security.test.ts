// The CLI in-process: `dst security …` (ACL entries: address canonical, perms, key files absolute).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { type AclEntry } from '../../src/engine/types.js';
import { run } from '../helpers/cli-harness.js';

describe('security', () => {
  const acl: AclEntry[] = [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }];

  test('add: address canonical, perm 0 = none, key file absolute', async () => {
    let r = await run(['security', 'add', 'vol', '--addr', '10.1.2.3/8', '--perm', 'rw'], { responses: { 'security-add': () => acl } });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.calls[0]!.args, { name: 'vol', addr: '10.0.0.0/8', perm: 'rw', keyFile: null });
    assert.match(r.out, /ADDRESS\s+PERM\s+KEY-FILE\n10\.0\.0\.0\/8\s+rw\s+-/);
    r = await run(['security', 'add', 'vol', '--addr', '::ffff:192.0.2.7', '--perm', '0', '--key-file', 'keys/c7'], { responses: { 'security-add': () => acl } });
    assert.deepEqual(r.calls[0]!.args, { name: 'vol', addr: '192.0.2.7', perm: 'none', keyFile: '/work/here/keys/c7' });
  });

  test('add: bad address or perm names the option', async () => {
    let r = await run(['security', 'add', 'vol', '--addr', '10.0.0.0/33', '--perm', 'rw']);
    assert.equal(r.code, 2);
    assert.match(r.err, /for --addr: prefix must be 0-32/);
    r = await run(['security', 'add', 'vol', '--addr', '10.0.0.1', '--perm', 'x']);
    assert.equal(r.code, 2);
    assert.match(r.err, /invalid permission "x" for --perm/);
  });

  test('del and list; list --json is the acl array', async () => {
    let r = await run(['security', 'del', 'vol', '--addr', '10.0.0.0/8'], { responses: { 'security-del': () => [] } });
    assert.deepEqual(r.calls[0], { cmd: 'security-del', args: { name: 'vol', addr: '10.0.0.0/8' } });
    assert.match(r.out, /ACL empty: nobody may connect/);
    r = await run(['security', 'list', 'vol', '--json'], { responses: { 'security-list': () => acl } });
    assert.deepEqual(JSON.parse(r.out), acl);
  });
});
