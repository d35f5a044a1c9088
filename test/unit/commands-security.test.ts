// The security file format of the original utility: `<perm> <address>` per line, perm parsed
// like strtoul(.., 0): 0 deny, 1 read, 2 write, 3 both. Errors name file:line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSecurityFile, strtoul0 } from '../../src/commands/security.js';
import { DstError } from '../../src/util/errors.js';

test('strtoul base 0: decimal, octal, hex', () => {
  assert.equal(strtoul0('3'), 3);
  assert.equal(strtoul0('0'), 0);
  assert.equal(strtoul0('03'), 3);
  assert.equal(strtoul0('0x3'), 3);
  assert.equal(strtoul0('0X2'), 2);
  assert.ok(Number.isNaN(strtoul0('08')));
  assert.ok(Number.isNaN(strtoul0('3x')));
  assert.ok(Number.isNaN(strtoul0('-1')));
  assert.ok(Number.isNaN(strtoul0('')));
});

test('perm 0-3 map to none, r, w, rw; comments and blank lines skipped; addresses canonical', () => {
  const text = [
    '# the original example',
    '3 192.168.4.81',
    '',
    '   ',
    '1 10.1.2.3/8   # host bits cleared',
    '2\t2001:db8::1',
    '0 ::ffff:192.0.2.7',
    '0x3 172.16.0.0/12',
    '\r',
  ].join('\n');
  assert.deepEqual(parseSecurityFile(text, '/etc/dst/sec.conf'), [
    { addr: '192.168.4.81', perm: 'rw', keyFile: null },
    { addr: '10.0.0.0/8', perm: 'r', keyFile: null },
    { addr: '2001:db8::1', perm: 'w', keyFile: null },
    { addr: '192.0.2.7', perm: 'none', keyFile: null },
    { addr: '172.16.0.0/12', perm: 'rw', keyFile: null },
  ]);
});

test('an optional key-file=PATH is resolved against the file\'s directory', () => {
  assert.deepEqual(parseSecurityFile('3 192.0.2.7 key-file=keys/c7\n1 192.0.2.8 key-file=/abs/k\n', '/etc/dst/sec.conf'), [
    { addr: '192.0.2.7', perm: 'rw', keyFile: '/etc/dst/keys/c7' },
    { addr: '192.0.2.8', perm: 'r', keyFile: '/abs/k' },
  ]);
});

test('an empty file is an empty list', () => {
  assert.deepEqual(parseSecurityFile('# nobody\n\n', 'f'), []);
});

test('bad lines name file:line and what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['3 192.0.2.1\n4 10.0.0.1\n', /^sec\.conf:2: invalid permission "4": expected 0 \(deny\), 1 \(read\), 2 \(write\) or 3/],
    ['08 10.0.0.1\n', /^sec\.conf:1: invalid permission "08"/],
    ['rw 10.0.0.1\n', /^sec\.conf:1: invalid permission "rw"/],
    ['\n\n3 host.example\n', /^sec\.conf:3: invalid ACL address "host\.example"/],
    ['3 10.0.0.0/40\n', /^sec\.conf:1: .*prefix must be 0-32/],
    ['3\n', /^sec\.conf:1: expected "<perm> <address>"/],
    ['3 10.0.0.1 extra\n', /^sec\.conf:1: unexpected "extra"/],
    ['3 10.0.0.1 key-file=a b\n', /^sec\.conf:1: expected "<perm> <address>"/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseSecurityFile(text, 'sec.conf'), (err: unknown) => {
      assert.ok(err instanceof DstError);
      assert.equal(err.code, 'DST_ERR_INVALID');
      assert.match(err.message, re);
      return true;
    }, JSON.stringify(text));
  }
});
