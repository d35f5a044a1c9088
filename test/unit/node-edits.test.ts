// A node's config edits are pure (engine/node-edits.ts): each returns a new config and leaves the
// one it was given as it was (frozen configs stay valid), refusing what is wrong with DstErrors.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { DstError } from '../../src/util/errors.js';
import {
  clearedCrypto, configOfAdd, deepFreeze, withAclEntries, withBoundPort, withCrypto, withoutAclEntry, withPolicy, withReplaced,
} from '../../src/engine/node-edits.js';
import { DEFAULT_LIMITS, type ExportConfig } from '../../src/engine/types.js';

const W = 'edit vol';

function frozenExport(): ExportConfig {
  const c = configOfAdd({ name: 'vol', role: 'export', size: null, disk: '/d', listen: '0.0.0.0:0' }, W) as ExportConfig;
  return deepFreeze({ ...c, acl: [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }] });
}

describe('node edits', () => {
  it('return new configs and never change (frozen) inputs', () => {
    const c = frozenExport();
    const before = JSON.stringify(c);
    const acl = withAclEntries(c, [{ addr: '10.0.0.0/8', perm: 'r', keyFile: null }, { addr: '192.0.2.7', perm: 'rw', keyFile: '/k' }]);
    assert.deepEqual(acl.acl.map((a) => `${a.addr} ${a.perm}`), ['10.0.0.0/8 r', '192.0.2.7 rw']);
    assert.deepEqual(withoutAclEntry(acl, '10.0.0.0/8', W).acl.map((a) => a.addr), ['192.0.2.7']);
    assert.equal(withPolicy(c, { maxInflight: 3 }, DEFAULT_LIMITS, W).policy.maxInflight, 3);
    // only a port asked as 0 is pinned to the one bound
    const pinned = (listen: string): string => (withBoundPort({ ...c, listen }, '0.0.0.0:4242') as ExportConfig).listen;
    assert.equal(pinned('0.0.0.0:0'), '0.0.0.0:4242');
    assert.equal(pinned('0.0.0.0:10825'), '0.0.0.0:10825');
    const gcm = withCrypto({ ...c.crypto, hash: 'sha256', hashKeyFile: '/h' }, { name: 'vol', cipher: 'aes-gcm', cipherKeyFile: '/k' }, W);
    assert.equal(gcm.suite, 'aes-gcm');
    assert.deepEqual({ hash: gcm.crypto.hash, hashKeyFile: gcm.crypto.hashKeyFile }, { hash: 'none', hashKeyFile: null });
    assert.deepEqual(clearedCrypto({ ...gcm.crypto, threads: 3 }), { cipher: 'none', hash: 'none', cipherKeyFile: null, hashKeyFile: null, threads: 3 });
    const list = [c];
    assert.deepEqual(withReplaced(list, [acl]).map((n) => n.name), ['vol']);
    assert.equal(list[0], c);
    assert.equal(JSON.stringify(c), before);
  });

  it('refuse what is wrong, naming the operation', () => {
    const c = frozenExport();
    const refused = (fn: () => unknown, re: RegExp): void => {
      assert.throws(fn, (err: unknown) => err instanceof DstError && err.message.startsWith(`${W}: `) && re.test(err.message));
    };
    refused(() => withoutAclEntry(c, '192.0.2.9', W), /no ACL entry for 192\.0\.2\.9/);
    refused(() => withPolicy(c, { maxInflight: 0 }, DEFAULT_LIMITS, W), /max-inflight 0 out of range/);
    refused(() => withCrypto(c.crypto, { name: 'vol', hash: 'hmac(sha256)' }, W), /is keyed: add --hash-key-file/);
    refused(() => configOfAdd({ name: 'vol', role: 'remote', size: null, remote: 'h:1', disk: '/d' }, W), /--disk is only for export nodes/);
  });
});
