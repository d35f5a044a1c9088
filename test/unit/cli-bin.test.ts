// bin/dst as a real child process (after the build): help, usage errors, no engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../../bin/dst', import.meta.url));

function dst(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(BIN, args, { env: { ...process.env, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

test('bin/dst --help exits 0 and prints the commands', async () => {
  const r = await dst(['--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /dst <command>/);
  assert.match(r.stdout, /dst node/);
  assert.equal(r.stderr, '');
});

test('bin/dst --version prints a version', async () => {
  const r = await dst(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+/);
});

test('bin/dst: usage error exits 2', async () => {
  const r = await dst(['node', 'add', 'vol', '--disk', 'x']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--listen ADDR:PORT is required with --disk/);
});

test('bin/dst: no engine on the socket exits 3', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dst-bin-'));
  try {
    const r = await dst(['status', '--json'], { DST_SOCKET: join(dir, 'none.sock') });
    assert.equal(r.code, 3, r.stderr);
    const e = (JSON.parse(r.stderr) as { error: { code: string } }).error;
    assert.equal(e.code, 'DST_ERR_NO_ENGINE');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
