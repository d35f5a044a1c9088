// Real NBD clients (libnbd tools, qemu-img, fio) against the local NBD endpoint over a memory
// target. Each test skips, naming the tool and its package, when the tool is not installed
// (under CI=true a missing tool fails instead: CI installs them all).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/util/log.js';
import { startNbdEndpoint, type NbdEndpoint } from '../../src/engine/remote/nbd-endpoint.js';
import { requireTool, skipOrFail } from '../helpers/tools.js';
import { createMemoryTarget, type MemoryTarget, type MemoryTargetOptions } from '../helpers/memory-target.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

const PACKAGES: Record<string, string> = {
  nbdinfo: 'libnbd-bin',
  nbdcopy: 'libnbd-bin',
  'qemu-img': 'qemu-utils',
  fio: 'fio',
};

/** true when a tool is missing: the test is skipped naming its package (a failure under CI) */
function missing(t: TestContext, tool: string): boolean {
  return !requireTool(t, tool, PACKAGES[tool] ?? tool);
}

interface Served { dir: string; target: MemoryTarget; ep: NbdEndpoint }

async function serve(t: TestContext, opts: MemoryTargetOptions = {}): Promise<Served> {
  const dir = await mkdtemp(join(tmpdir(), 'dst-nbd-interop-'));
  const target = createMemoryTarget({ name: 'vol', size: 64 * MiB, ...opts });
  const ep = await startNbdEndpoint({ target, socketPath: join(dir, 'nbd', 'vol.sock'), tcp: null, log: silentLogger });
  t.after(async () => {
    await ep.close({ force: true });
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, target, ep };
}

/** Run a tool without blocking the event loop (the endpoint lives in this process). */
async function tool(cmd: string, args: string[], timeoutMs = 20_000): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * MiB });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}${e.stdout ?? ''}`);
  }
}

test('nbdinfo --json: size, flags, block sizes; read-only export', { timeout: 20_000 }, async (t) => {
  if (missing(t, 'nbdinfo')) return;
  const s = await serve(t, { size: 3 * MiB + 512 });
  const info = JSON.parse(await tool('nbdinfo', ['--json', s.ep.uri])) as {
    protocol: string; exports: Record<string, unknown>[];
  };
  assert.equal(info.protocol, 'newstyle-fixed');
  const ex = info.exports[0]!;
  assert.equal(ex['export-size'], 3 * MiB + 512);
  assert.equal(ex['is_read_only'], false);
  assert.equal(ex['can_flush'], true);
  assert.equal(ex['can_fua'], true);
  assert.equal(ex['can_trim'], true);
  assert.equal(ex['can_zero'], true);
  assert.equal(ex['can_multi_conn'], true);
  assert.equal(ex['block_size_minimum'], 1);
  assert.equal(ex['block_size_preferred'], 4096);
  assert.equal(ex['block_size_maximum'], 32 * MiB);

  const ro = await serve(t, { size: MiB, permissions: 'r' });
  const roInfo = JSON.parse(await tool('nbdinfo', ['--json', ro.ep.uri])) as { exports: Record<string, unknown>[] };
  assert.equal(roInfo.exports[0]!['is_read_only'], true);
  assert.equal(roInfo.exports[0]!['export-size'], MiB);
});

test('nbdinfo --list names the export; an unknown export name is refused', { timeout: 20_000 }, async (t) => {
  if (missing(t, 'nbdinfo')) return;
  const s = await serve(t, { name: 'vol' });
  const out = await tool('nbdinfo', ['--list', '--json', s.ep.uri]);
  const list = JSON.parse(out) as { exports: { 'export-name': string }[] };
  assert.deepEqual(list.exports.map((e) => e['export-name']), ['vol']);
  // the export's own name selects it too
  const named = s.ep.uri.replace('nbd+unix:///', 'nbd+unix:///vol');
  assert.equal((JSON.parse(await tool('nbdinfo', ['--json', named])) as { exports: unknown[] }).exports.length, 1);
  await assert.rejects(tool('nbdinfo', ['--json', s.ep.uri.replace('nbd+unix:///', 'nbd+unix:///other')]), /unknown|export|failed/i);
});

test('nbdcopy: 64 MiB of random data in and out are equal', { timeout: 30_000 }, async (t) => {
  if (missing(t, 'nbdcopy')) return;
  const s = await serve(t, { size: 64 * MiB, capacity: 16 });
  const src = join(s.dir, 'in.bin');
  const dst = join(s.dir, 'out.bin');
  const data = randomFillSync(Buffer.alloc(64 * MiB));
  await writeFile(src, data);
  await tool('nbdcopy', [src, s.ep.uri]);
  assert.ok(s.target.data.equals(data), 'the target holds what was copied in');
  await tool('nbdcopy', [s.ep.uri, dst]);
  assert.ok((await readFile(dst)).equals(data), 'what was copied out equals the input');
  assert.ok(s.target.maxOutstanding <= 16);
});

test('qemu-img convert into the export, then qemu-img compare', { timeout: 30_000 }, async (t) => {
  if (missing(t, 'qemu-img')) return;
  const s = await serve(t, { size: 16 * MiB });
  const src = join(s.dir, 'src.img');
  const data = randomFillSync(Buffer.alloc(16 * MiB));
  data.fill(0, 4 * MiB, 8 * MiB); // a zero run: qemu may use WRITE_ZEROES or skip it
  s.target.data.fill(0xaa);
  await writeFile(src, data);
  await tool('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, s.ep.uri]);
  const cmp = await tool('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, s.ep.uri]);
  assert.match(cmp, /identical/i);
  assert.ok(s.target.data.equals(data));
});

test('fio --ioengine=nbd randrw with crc32c verify', { timeout: 30_000 }, async (t) => {
  if (missing(t, 'fio')) return;
  const s = await serve(t, { size: 64 * MiB, capacity: 16, maxRequest: 64 * 1024 });
  // fio's nbd engine exists only when fio was built with libnbd
  const help = spawnSync('fio', ['--enghelp=nbd'], { encoding: 'utf8' });
  if (help.status !== 0 || !/uri/.test(help.stdout + help.stderr)) {
    skipOrFail(t, 'fio has no nbd engine (install a fio built with libnbd)');
    return;
  }
  const out = await tool('fio', [
    '--name=dst', '--ioengine=nbd', `--uri=${s.ep.uri}`, '--rw=randrw', '--bs=4k', '--iodepth=32',
    '--verify=crc32c', '--verify_state_save=0', '--verify_fatal=1', '--size=32M', '--output-format=json',
  ]);
  const json = JSON.parse(out.slice(out.indexOf('{'))) as { jobs: { error: number; read: { io_bytes: number }; write: { io_bytes: number } }[] };
  const job = json.jobs[0]!;
  assert.equal(job.error, 0);
  assert.ok(job.write.io_bytes > 0 && job.read.io_bytes > 0);
  assert.ok(s.target.maxOutstanding <= 16);
});
