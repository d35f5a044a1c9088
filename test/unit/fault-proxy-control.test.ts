// The control socket: one line in, one line of JSON (or `error: …`) out; unknown commands are clear errors.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isDstError } from '../../src/util/errors.js';
import { ControlServer, controlRequest, splitCommand, joinCommand } from '../../src/faultproxy/control.js';
import { FaultProxy } from '../../src/faultproxy/proxy.js';
import { startSinkServer, withTimeout } from '../helpers/net-testkit.js';

function rawRequest(path: string, text: string): Promise<string> {
  return withTimeout(new Promise<string>((resolve, reject) => {
    const s = net.connect(path);
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => { buf += d; });
    s.on('end', () => resolve(buf));
    s.on('error', reject);
    s.end(text); // half-close: the server still answers every line, then ends
  }), 2000, 'control reply');
}

test('fault-proxy control socket round trip, unknown command error', { timeout: 5000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dst-fp-ctl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, 'ctl.sock');
  const server = await startSinkServer();
  t.after(() => server.close());
  const proxy = new FaultProxy({ listen: '127.0.0.1:0', target: server.address });
  await proxy.start();
  t.after(() => proxy.close());
  const ctl = new ControlServer(proxy, sock);
  await ctl.start();
  t.after(() => ctl.close());

  const st = await controlRequest(sock, 'status');
  assert.equal(st.mode, 'pass');
  assert.equal(st.connections, 0);
  assert.equal(st.bytesUp, 0);
  assert.equal(st.bytesDown, 0);
  assert.equal(st.corrupted, 0);
  assert.equal(st.capture, null);
  assert.equal(st.listen, proxy.addressText);

  assert.equal((await controlRequest(sock, 'stall')).mode, 'stall');
  assert.equal(proxy.status().mode, 'stall');
  const d = await controlRequest(sock, ['delay', '250']);
  assert.equal(d.mode, 'delay');
  assert.equal(d.delayMs, 250);
  assert.equal((await controlRequest(sock, 'delay 2s')).delayMs, 2000);
  assert.deepEqual((await controlRequest(sock, 'corrupt every 4 down')).corrupt, { kind: 'every', every: 4, dir: 'down', bit: 0 });
  assert.deepEqual((await controlRequest(sock, 'corrupt offset 9')).corrupt, { kind: 'offset', offset: 9, dir: 'up', bit: 0 });
  assert.equal((await controlRequest(sock, 'refuse')).refusing, true);
  assert.equal((await controlRequest(sock, 'accept')).refusing, false);
  assert.equal((await controlRequest(sock, 'cut')).cut, 0);
  const p = await controlRequest(sock, 'pass');
  assert.equal(p.mode, 'pass');
  assert.equal(p.corrupt, null);

  await assert.rejects(controlRequest(sock, 'explode now'),
    (e) => isDstError(e, 'DST_ERR_USAGE') && /unknown command "explode"/.test(e.message) && /commands: pass/.test(e.message));
  await assert.rejects(controlRequest(sock, 'delay'), (e) => isDstError(e, 'DST_ERR_USAGE') && /usage: delay MS/.test(e.message));
  await assert.rejects(controlRequest(sock, 'delay soon'), (e) => isDstError(e, 'DST_ERR_INVALID') && /invalid delay/.test(e.message));
  await assert.rejects(controlRequest(sock, 'corrupt offset 3 sideways'), (e) => isDstError(e, 'DST_ERR_INVALID'));
  await assert.rejects(controlRequest(join(dir, 'nobody.sock'), 'status'), (e) => isDstError(e, 'DST_ERR_NO_ENGINE'));

  // On the wire: one reply line per request line, in order; errors as `error: …`.
  const lines = (await rawRequest(sock, 'status\nfrobnicate\nstall\n')).split('\n');
  assert.equal(lines.length, 4);
  assert.equal(JSON.parse(lines[0]!).mode, 'pass');
  assert.match(lines[1]!, /^error: unknown command "frobnicate"/);
  assert.equal(JSON.parse(lines[2]!).mode, 'stall');
  assert.equal(lines[3], '');

  assert.deepEqual(splitCommand(joinCommand(['inject', '/tmp/a b.bin', 'down'])), ['inject', '/tmp/a b.bin', 'down']);
});
