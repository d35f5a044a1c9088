// `dst fault-proxy` as a process: first stdout line is the real address, `ctl` switches it over the
// control socket (an unknown command fails clearly), SIGTERM closes it and the process ends by itself.
// The module is driven through yargs exactly as the CLI registers it (src/cli.ts is not needed).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connectCollector, startEchoServer, withTimeout } from '../helpers/net-testkit.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MODULE = new URL('../../src/commands/fault-proxy.js', import.meta.url).href;
const SCRIPT = `
import yargs from 'yargs';
import { faultProxyCommand } from ${JSON.stringify(MODULE)};
try {
  await yargs(process.argv.slice(1)).command(faultProxyCommand).strict().demandCommand(1)
    .fail((msg, err) => { throw err ?? Object.assign(new Error(msg), { code: 'DST_ERR_USAGE' }); }).parseAsync();
} catch (err) {
  process.stderr.write((err.code ?? 'ERR') + ': ' + err.message + '\\n');
  process.exitCode = err.code === 'DST_ERR_USAGE' ? 2 : 1;
}`;

function dst(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--input-type=module', '-e', SCRIPT, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return withTimeout(new Promise((resolve) => {
    const p = dst(args);
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  }), 3000, `dst ${args.join(' ')}`);
}

test('fault-proxy command: listening line, ctl round trip, SIGTERM ends it', { timeout: 5000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dst-fp-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, 'ctl.sock');
  const echo = await startEchoServer();
  t.after(() => echo.close());

  const proxy = dst(['fault-proxy', '--listen', '127.0.0.1:0', '--target', echo.address, '--control', sock, '--log-level', 'error']);
  t.after(() => { if (proxy.exitCode === null) proxy.kill('SIGKILL'); });
  let out = '';
  let err = '';
  proxy.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => proxy.on('exit', (code) => resolve(code)));
  const first = await withTimeout(new Promise<string>((resolve) => {
    proxy.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
  }), 3000, 'the listening line');
  const m = /^listening 127\.0\.0\.1:(\d+)$/.exec(first);
  assert.ok(m, `first line ${JSON.stringify(first)} (stderr: ${err})`);
  const port = Number(m[1]);
  assert.ok(port > 0);

  const c = await connectCollector(port);
  c.socket.write('ping');
  assert.equal((await c.waitBytes(4)).toString(), 'ping');

  const ok = await run(['fault-proxy', 'ctl', sock, 'delay', '100']);
  assert.equal(ok.code, 0, ok.stderr);
  const reply = JSON.parse(ok.stdout) as { mode: string; delayMs: number; connections: number; bytesUp: number };
  assert.equal(reply.mode, 'delay');
  assert.equal(reply.delayMs, 100);
  assert.equal(reply.connections, 1);
  assert.equal(reply.bytesUp, 4);

  const bad = await run(['fault-proxy', 'ctl', sock, 'teleport']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /DST_ERR_USAGE: fault-proxy: unknown command "teleport"/);
  assert.equal(bad.stdout, '');

  proxy.kill('SIGTERM');
  assert.equal(await withTimeout(exited, 3000, 'the proxy to exit'), 0, err);
  assert.equal(existsSync(sock), false, 'control socket removed');
  await c.waitEnded();
  c.socket.destroy();
});
