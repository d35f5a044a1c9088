// The listeners: a stale unix socket is replaced, a non-socket or a live one is refused, TCP port 0
// reports its port. (A raw client over the unix socket: test/helpers/nbd-raw-client.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/util/log.js';
import { startNbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import { createMemoryTarget } from '../helpers/memory-target.js';
import { Cmd } from '../../src/protocol/nbd.js';
import { RawClient } from '../helpers/nbd-raw-client.js';

test('stale socket removed; a non-socket file is refused; TCP on port 0 reports the real port', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dst-nbd-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const target = createMemoryTarget({ name: 'vol' });
  const path = join(dir, 'vol.sock');
  // a stale socket: bound by a process that exited without unlinking it
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
  assert.ok((await stat(path)).isSocket());
  await writeFile(join(dir, 'file.sock'), 'x');
  await assert.rejects(startNbdEndpoint({ target, socketPath: join(dir, 'file.sock'), tcp: null, log: silentLogger }), /not a socket/);

  const ep = await startNbdEndpoint({ target, socketPath: path, tcp: { host: '127.0.0.1', port: 0 }, log: silentLogger });
  t.after(() => ep.close({ force: true }));
  assert.ok(ep.tcpAddress !== null && ep.tcpAddress.port > 0);
  const c = await RawClient.connect(ep.tcpAddress!.port, '127.0.0.1');
  await c.open({ name: 'vol' });
  c.send({ type: Cmd.READ, offset: 0, length: 8 });
  assert.equal((await c.simpleReply(8)).error, 0);
  c.destroy();
  await assert.rejects(startNbdEndpoint({ target, socketPath: null, tcp: null, log: silentLogger }));
  // a live endpoint on the path is not stolen
  await assert.rejects(startNbdEndpoint({ target, socketPath: path, tcp: null, log: silentLogger }), /another process/);
  const again = await RawClient.connect(path);
  await again.open();
  again.destroy();
  // a TCP bind failure leaves no unix socket behind
  const other = join(dir, 'other.sock');
  await assert.rejects(startNbdEndpoint({ target, socketPath: other, tcp: { host: '127.0.0.1', port: ep.tcpAddress!.port }, log: silentLogger }),
    (e: unknown) => e instanceof Error && /cannot listen/.test(e.message));
  await assert.rejects(stat(other), /ENOENT/);
});
