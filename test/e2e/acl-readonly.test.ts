// A read-only grant is read-only for every client: nbdinfo shows it, nbdcopy fails, and a
// hand-built writer that ignores the grant gets EPERM from the export itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import { startPair } from '../helpers/cluster.js';
import { requireTool, run } from '../helpers/tools.js';
import { WireClient } from '../helpers/wire-client.js';
import { Op, Access } from '../../src/protocol/wire.js';

test('read-only grant: nbdinfo read-only, nbdcopy refused, raw write EPERM from the export', async (t) => {
  const pair = await startPair(t, { perm: 'r', size: 8 * 1024 * 1024 });
  assert.equal((await pair.show()).permissions, 'r');
  if (requireTool(t, 'nbdinfo', 'libnbd-bin')) {
    const info = await run('nbdinfo', ['--json', pair.uri]);
    assert.equal(info.code, 0, info.stderr);
    assert.equal(JSON.parse(info.stdout).exports[0].is_read_only, true);
    const src = join(pair.rem.dir, 'src.bin');
    writeFileSync(src, Buffer.alloc(1 << 20, 7));
    const copy = await run('nbdcopy', [src, pair.uri]);
    assert.notEqual(copy.code, 0, 'nbdcopy into a read-only export must fail');
  }
  const raw = await WireClient.connect(pair.listen);
  t.after(() => raw.close());
  const hello = await raw.hello({ access: Access.READ | Access.WRITE });
  assert.equal(hello.status, 0);
  assert.equal(hello.reply!.granted, Access.READ, 'export grants read only');
  const resp = await raw.io(Op.WRITE, 1, 0, 4096, Buffer.alloc(4096, 0xee));
  assert.ok(resp, 'export answers, connection kept');
  assert.equal(resp.status, constants.errno.EPERM);
  const read = await raw.io(Op.READ, 2, 0, 4096);
  assert.equal(read!.status, 0);
  assert.ok(read!.payload.equals(Buffer.alloc(4096)), 'the refused write changed nothing');
});

test('an address not in the ACL is refused at HELLO, and a revoked entry gets EPERM on the next request', async (t) => {
  const pair = await startPair(t, { size: 8 * 1024 * 1024 });
  const stranger = await WireClient.connect(pair.listen, '127.0.0.2');
  t.after(() => stranger.close());
  const refused = await stranger.hello();
  assert.equal(refused.status, constants.errno.EACCES);
  assert.match(refused.message!, /127\.0\.0\.2/);
  const raw = await WireClient.connect(pair.listen);
  t.after(() => raw.close());
  assert.equal((await raw.hello()).status, 0);
  assert.equal((await raw.io(Op.READ, 1, 0, 512))!.status, 0);
  await pair.exp.dstJson(['security', 'del', pair.exportName, '--addr', '127.0.0.1']);
  const after = await raw.io(Op.READ, 2, 0, 512);
  assert.equal(after!.status, constants.errno.EPERM, 'revoked entry → EPERM on the next request');
});
