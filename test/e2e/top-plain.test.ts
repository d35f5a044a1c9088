// `dst top` with stdout not a terminal: plain text, one refresh after another (a header line and
// the node table each time), no escape codes; an interrupt ends it with exit 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startPair } from '../helpers/cluster.js';
import { dstBin, waitFor } from '../helpers/tools.js';

test('dst top off a TTY: plain refreshes, no escape codes, SIGINT exits 0', async (t) => {
  const pair = await startPair(t, { size: 16 * 1024 * 1024 });
  const child = spawn(process.execPath, [dstBin(), '--socket', pair.rem.socket, 'top', '--interval', '200ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await waitFor('three refreshes', () => (out.match(/^dst top: /gm) ?? []).length >= 3, 20_000);
  child.kill('SIGINT');
  assert.equal(await exited, 0, err);
  assert.doesNotMatch(out, /\x1b/, 'no escape codes off a terminal');
  assert.doesNotMatch(out, /q quits/, 'no key help: stdin is not read');
  const refreshes = out.split(/^(?=dst top: )/m).filter((r) => r.trim() !== '');
  for (const r of refreshes.slice(0, -1)) {
    assert.match(r, /^dst top: 1 nodes, every 0\.2s, /, r);
    assert.match(r, /^NAME {2,}STATE/m);
    assert.match(r, new RegExp(`^${pair.remoteName} {2,}ready `, 'm'));
  }
});
