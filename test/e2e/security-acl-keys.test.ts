// The export's ACL with crypto on (aes-gcm):
//  - an address the ACL does not allow is refused: a real remote node (from 127.0.0.1, only
//    127.0.0.2 allowed) goes to backoff with reason `denied` and the export announces acl-denied;
//    a hand-built client from 127.0.0.2 (only 127.0.0.1 allowed) is refused at HELLO;
//  - an entry bound to a per-client key refuses that address with any other key — the export's own
//    node key included — and accepts it with the bound key (the same key bytes in another file form);
//    revoking that entry → EPERM on the next request of the live session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync } from 'node:fs';
import { startNoWait, startPair } from '../helpers/cluster.js';
import type { EventStream } from '../helpers/engine.js';
import { makeKeyFile } from '../helpers/keys.js';
import { NbdClient, NbdError } from '../helpers/nbd-client.js';
import { blockContent } from '../helpers/blocks.js';
import { tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/tools.js';
import { WireClient } from '../helpers/wire-client.js';
import type { NodeShow } from '../../src/engine/types.js';

const gcm = (path: string): string[] => ['--cipher', 'aes-gcm', '--cipher-key-file', path];

test('an address outside the ACL is refused (real remote and hand-built client from 127.0.0.2)', async (t) => {
  const dir = tmpDir(t, 'dst-ak-');
  const k = makeKeyFile(dir, 'k', 'hex');
  let expEvents!: EventStream;
  const pair = await startPair(t, {
    size: 4 * 1024 * 1024, crypto: gcm(k.path), aclAddr: '127.0.0.2', waitReady: false,
    beforeNodes: async (exp) => { expEvents = await exp.events(); },
  });
  // The remote connects from 127.0.0.1 (loopback's source address); only 127.0.0.2 is allowed.
  const show = await waitFor('remote refused with reason denied', async () => {
    const s = await pair.show();
    return s.state === 'backoff' && s.reason === 'denied' ? s : null;
  }, 15_000).catch(async (e: Error) => { throw new Error(`${e.message}; last show ${JSON.stringify(await pair.show())}\n${pair.exp.log().slice(-2000)}`); });
  assert.equal(show.nbd, null);
  await expEvents.waitFor((r) => r.event === 'acl-denied' && r.addr === '127.0.0.1', 10_000, 'acl-denied for 127.0.0.1');
  assert.match(pair.exp.log(), /127\.0\.0\.1[^\n]*(denied|not allowed|refus)|(denied|not allowed|refus)[^\n]*127\.0\.0\.1/i, 'the export log names the denied address');
  const expStats = (await pair.exp.show(pair.exportName)).stats;
  assert.equal(expStats.bytesRead + expStats.bytesWritten, 0);

  // Now allow only 127.0.0.1 and come from 127.0.0.2 with a hand-built client.
  await pair.exp.dstJson(['security', 'del', pair.exportName, '--addr', '127.0.0.2']);
  await pair.exp.dstJson(['security', 'add', pair.exportName, '--addr', '127.0.0.1', '--perm', 'rw']);
  const stranger = await WireClient.connect(pair.listen, '127.0.0.2');
  t.after(() => stranger.close());
  const refused = await stranger.hello({ suite: 'aes-gcm' });
  assert.notEqual(refused.status, 0, 'HELLO from 127.0.0.2 refused');
  assert.match(refused.message ?? '', /127\.0\.0\.2/, 'the refusal names the address');
  await expEvents.waitFor((r) => r.event === 'acl-denied' && r.addr === '127.0.0.2', 10_000, 'acl-denied for 127.0.0.2');
  // …while the real remote from 127.0.0.1 now gets in.
  await pair.rem.dstJson(['node', 'reconnect', pair.remoteName]).catch(() => null);
  await pair.rem.waitForState(pair.remoteName, 'ready', 20_000);
});

test('an ACL entry bound to a key: other keys (the node key included) are refused, the bound key works', async (t) => {
  const dir = tmpDir(t, 'dst-ak-');
  const nodeKey = makeKeyFile(dir, 'node.key', 'hex');            // the export node's own key
  const clientKey = makeKeyFile(dir, 'client.raw', 'raw');        // the key bound to 127.0.0.1
  const clientKeyHex = makeKeyFile(dir, 'client.hex', 'hex', clientKey.key); // same bytes, hex form
  const otherKey = makeKeyFile(dir, 'other.b64', 'base64');
  let expEvents!: EventStream;
  const pair = await startPair(t, {
    size: 4 * 1024 * 1024, exportCrypto: gcm(nodeKey.path), remoteCrypto: gcm(clientKeyHex.path), aclKeyFile: clientKey.path,
    beforeNodes: async (exp) => { expEvents = await exp.events(); },
  });
  const acl = (await pair.exp.show(pair.exportName)).acl!;
  assert.deepEqual(acl.map((e) => [e.addr, e.perm, e.keyFile]), [['127.0.0.1', 'rw', clientKey.path]], 'the entry is bound to the key file');

  // The bound key works: data moves.
  const nbd = await NbdClient.connect(pair.socket);
  t.after(() => nbd.close());
  await nbd.write(0, blockContent(0, 1));
  assert.ok((await nbd.read(0, 4096)).equals(blockContent(0, 1)));
  const fd = openSync(pair.disk, 'r');
  const b = Buffer.alloc(4096);
  readSync(fd, b, 0, 4096, 0);
  closeSync(fd);
  assert.ok(b.equals(blockContent(0, 1)), "the write reached the export's file");

  // Other keys from the same address: refused.
  for (const [name, key] of [['with-node-key', nodeKey], ['with-other-key', otherKey]] as const) {
    const before = (await pair.exp.show(pair.exportName)).stats;
    await pair.rem.dstJson(['node', 'add', name, '--remote', pair.listen, '--export', pair.exportName]);
    await pair.rem.dstJson(['crypto', 'set', name, ...gcm(key.path)]);
    await startNoWait(pair.rem, name);
    const s = await waitFor(`${name}: refused`, async () => {
      const x = await pair.rem.dstJson<NodeShow>(['node', 'show', name]);
      return x.state === 'backoff' && x.reason !== null ? x : null;
    }, 15_000).catch(async (e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(await pair.rem.dstJson(['node', 'show', name]))}\n${pair.exp.log().slice(-2000)}`); });
    assert.ok(s.reason === 'auth-failed' || s.reason === 'denied', `${name}: reason auth-failed or denied (got ${s.reason})`);
    assert.equal(s.nbd, null, `${name}: no NBD socket`);
    assert.equal(s.permissions, null, `${name}: nothing granted`);
    const after = (await pair.exp.show(pair.exportName)).stats;
    assert.equal(after.bytesRead + after.bytesWritten, before.bytesRead + before.bytesWritten, `${name}: no data moved`);
    await pair.rem.dstJson(['node', 'stop', name, '--force']).catch(() => null);
  }
  assert.ok(expEvents.records.some((r) => r.event === 'auth-failed' || (r.event === 'acl-denied' && r.addr === '127.0.0.1')),
    `the export announced the refusals: ${JSON.stringify(expEvents.records.filter((r) => r.event !== 'subscribed'))}`);
  // The holder of the bound key was never disturbed.
  const main = await pair.show();
  assert.equal(main.state, 'ready');
  await nbd.write(4096, blockContent(1, 1));
  assert.ok((await nbd.read(4096, 4096)).equals(blockContent(1, 1)));

  // Revoking the key-bound entry: the very next request on the live, authenticated session → EPERM.
  await pair.exp.dstJson(['security', 'del', pair.exportName, '--addr', '127.0.0.1']);
  await assert.rejects(nbd.write(8192, blockContent(2, 1)), (e: unknown) => e instanceof NbdError && e.errno === 1,
    'a write after the revocation fails with EPERM');
  await assert.rejects(nbd.read(0, 4096), (e: unknown) => e instanceof NbdError && e.errno === 1,
    'a read after the revocation fails with EPERM');
  const fd2 = openSync(pair.disk, 'r');
  const b2 = Buffer.alloc(4096);
  readSync(fd2, b2, 0, 4096, 8192);
  closeSync(fd2);
  assert.ok(b2.equals(Buffer.alloc(4096)), 'the refused write did not land');
});
