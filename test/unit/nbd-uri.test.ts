// The NBD URI parser (issue 17): nbd:// and nbd+unix:// as the standard has them, and a clear
// DST_ERR_INVALID naming the URI for everything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isNbdUri, parseNbdUri } from '../../src/protocol/nbd-uri.js';
import { DstError } from '../../src/util/errors.js';

test('nbd:// and nbd+unix:// parse; the port defaults to 10809; names are percent-decoded', () => {
  assert.deepEqual(parseNbdUri('nbd://example.com/img'), { transport: 'tcp', host: 'example.com', port: 10809, exportName: 'img', text: 'nbd://example.com/img' });
  assert.deepEqual(parseNbdUri('nbd://192.0.2.1:10900'), { transport: 'tcp', host: '192.0.2.1', port: 10900, exportName: '', text: 'nbd://192.0.2.1:10900' });
  assert.equal((parseNbdUri('nbd://[::1]:7/a%20b') as { host: string }).host, '::1');
  assert.equal(parseNbdUri('nbd://[::1]:7/a%20b').exportName, 'a b');
  assert.deepEqual(parseNbdUri('nbd+unix:///disk?socket=/run/x.sock'),
    { transport: 'unix', socket: '/run/x.sock', exportName: 'disk', text: 'nbd+unix:///disk?socket=/run/x.sock' });
  assert.equal(parseNbdUri('nbd+unix:///?socket=/s').exportName, '');
});

test('isNbdUri tells a URI from a path', () => {
  for (const s of ['nbd://h/e', 'NBD://h', 'nbd+unix:///?socket=/s', 'nbds://h/e']) assert.ok(isNbdUri(s), s);
  for (const s of ['/srv/vol.img', 'nbd.img', './nbd://x', 'nbd:/x', 'http://h/e']) assert.ok(!isNbdUri(s), s);
});

test('malformed URIs: DST_ERR_INVALID, EINVAL, the URI and what is wrong in the message', () => {
  const cases: [string, RegExp][] = [
    ['nbds://h/e', /TLS/],
    ['nbd+vsock:///e', /scheme/],
    ['nbd:///e', /no host/],
    ['nbd://h:99999/e', /not a valid URI|out of range/],
    ['nbd://h/e?socket=/s', /unsupported query/],
    ['nbd://user@h/e', /user names/],
    ['nbd://h/e#frag', /fragment/],
    ['nbd://h/%zz', /percent-encoding/],
    ['nbd+unix:///e', /needs \?socket=PATH/],
    ['nbd+unix:///e?socket=rel.sock', /absolute path/],
    ['nbd+unix://host/e?socket=/s', /takes no host/],
    ['nbd+unix:///e?socket=/s&x=1', /unsupported query/],
    [`nbd://h/${'a'.repeat(4097)}`, /longer than 4096/],
  ];
  for (const [uri, why] of cases) {
    assert.throws(() => parseNbdUri(uri), (err: unknown) => {
      assert.ok(err instanceof DstError, uri);
      assert.equal(err.code, 'DST_ERR_INVALID');
      assert.equal(err.errno, 'EINVAL');
      assert.ok(err.message.includes(uri.slice(0, 40)), err.message);
      assert.match(err.message, why);
      return true;
    }, uri);
  }
});
