// The metrics listener: a port in use or an address not of this machine makes the engine refuse
// to start (exit 1, naming the address, no control socket left); a bad --metrics-listen is a usage
// error (exit 2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { dstBin, run } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

test('metrics listener: port in use or a foreign address → exit 1 naming it; bad values → exit 2', async (t) => {
  const dir = tmpDir(t, 'dst-mx-');
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.after(() => busy.close());
  const addr = `127.0.0.1:${(busy.address() as { port: number }).port}`;
  const engine = (listen: string): Promise<{ code: number; stderr: string }> => run(process.execPath,
    [dstBin(), '--socket', join(dir, 'e.sock'), 'engine', '--no-config', '--state-dir', join(dir, 'st'), '--metrics-listen', listen], { timeoutMs: 30_000 });

  const r = await engine(addr);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`cannot serve metrics on ${addr}.*EADDRINUSE|cannot serve metrics on ${addr}.*in use`));
  assert.equal(existsSync(join(dir, 'e.sock')), false, 'no control socket left behind');

  const foreign = '192.0.2.1:9100'; // TEST-NET-1: no interface of this machine has it
  const f = await engine(foreign);
  assert.equal(f.code, 1, f.stderr);
  assert.match(f.stderr, new RegExp(`cannot serve metrics on ${foreign}.*EADDRNOTAVAIL|cannot serve metrics on ${foreign}.*not available`));
  assert.equal(existsSync(join(dir, 'e.sock')), false, 'no control socket left behind');

  for (const bad of ['nope', '127.0.0.1:99999', '', '127.0.0.1', '::1:80']) {
    const b = await engine(bad);
    assert.equal(b.code, 2, `--metrics-listen ${JSON.stringify(bad)}: ${b.stderr}`);
    assert.match(b.stderr, /metrics-listen/);
  }
});
