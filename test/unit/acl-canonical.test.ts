// ACL addresses in one canonical form: IPv4-mapped IPv6 entries, in any spelling, become IPv4
// (prefix − 96) wherever entries are parsed (engine, INI, the original security file format); an
// IPv6 prefix shorter than /96 covering the mapped range is refused, saying to add 0.0.0.0/0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalAddr, parseAllowLine } from '../../src/engine/validate.js';
import { parseSecurityFile } from '../../src/commands/security.js';
import { compileAcl, matchAcl } from '../../src/engine/export/acl.js';

const MAPPED: [string, string][] = [
  ['::ffff:127.0.0.1', '127.0.0.1'],
  ['::ffff:7f00:1', '127.0.0.1'],
  ['::FFFF:7F00:0001/128', '127.0.0.1'],
  ['::ffff:127.0.0.1/128', '127.0.0.1'],
  ['::ffff:127.0.0.0/104', '127.0.0.0/8'],
  ['::ffff:7f00:0/104', '127.0.0.0/8'],
  ['0:0:0:0:0:ffff:7f01:203/120', '127.1.2.0/24'],
  ['::ffff:0:0/96', '0.0.0.0/0'],
];

test('mapped entries become IPv4 in every parser', () => {
  for (const [mapped, v4] of MAPPED) {
    assert.equal(canonicalAddr(mapped, 'security add vol'), v4, mapped);
    assert.deepEqual(parseAllowLine(`${mapped} r`, '[node "vol"] allow'), { addr: v4, perm: 'r', keyFile: null }, `INI ${mapped}`);
    assert.deepEqual(parseSecurityFile(`1 ${mapped}\n`, '/etc/dst/sec'), [{ addr: v4, perm: 'r', keyFile: null }], `load ${mapped}`);
  }
});

test('mapped entries match IPv4 and mapped peers exactly as their IPv4 forms', () => {
  for (const [mapped, v4] of MAPPED) {
    const viaMapped = compileAcl([{ addr: '0.0.0.0/0', perm: 'rw', keyFile: null }, { addr: canonicalAddr(mapped, 'x'), perm: 'none', keyFile: null }]);
    const viaV4 = compileAcl([{ addr: '0.0.0.0/0', perm: 'rw', keyFile: null }, { addr: v4, perm: 'none', keyFile: null }]);
    for (const peer of ['127.0.0.1', '::ffff:127.0.0.1', '10.0.0.1']) {
      assert.equal(matchAcl(viaMapped, peer)?.perm, matchAcl(viaV4, peer)?.perm, `${mapped} vs ${v4} for peer ${peer}`);
    }
  }
});

test('IPv6 prefixes wider than /96 that cover the mapped range are refused, naming 0.0.0.0/0', () => {
  for (const bad of ['::/0', '::/1', '::/64', '::ffff:0:0/80', '::ffff:127.0.0.1/95']) {
    assert.throws(() => canonicalAddr(bad, 'security add vol'),
      (err: Error) => /security add vol: ACL address .* never matches IPv4 peers/.test(err.message) && /add 0\.0\.0\.0\/0/.test(err.message), bad);
    assert.throws(() => parseAllowLine(`${bad} rw`, '[node "vol"] allow'), /add 0\.0\.0\.0\/0/, `INI ${bad}`);
  }
  for (const ok of ['::1', 'fd00::/8', '2001:db8::/32', '::/96', '8000::/1']) assert.doesNotThrow(() => canonicalAddr(ok, 'x'), ok);
});
