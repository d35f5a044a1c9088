// `npm run bench [-- --quick] [-- --repeat N] [-- --json FILE]`: dst against nbdkit, same topology,
// same run, and the CLI's start-up (bench/startup.ts).
//   client (fio --ioengine=nbd) → unix socket → local hop → TCP loopback → export hop → 1 GiB file on tmpfs
// dst: two engine processes (remote node, export node). Peers: nbdkit file server + nbdkit nbd
// client-side hop; the same with --filter=retry; and TLS-PSK on the TCP hop. Cases alternate:
// for each workload, N rounds (--repeat N, default 1) of every system, the order rotated by one
// system per round; each row is the median of its N runs.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { benchResync, resyncRatioText, RESYNC_SYSTEM, type MirrorSetup } from './resync.js';
import { medianRows, parseRepeat, roundOrder, type Row } from './stats.js';
import { measureStartup, startupText, type Startup } from './startup.js';
import { METRICS_ARGS, SCRAPED_SYSTEM, scrapeRatioLines, scrapeRound } from './scrape.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DST = join(ROOT, 'bin', 'dst');
const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const jsonIdx = args.indexOf('--json');
const JSON_OUT = jsonIdx >= 0 ? args[jsonIdx + 1] : null;
const RUNTIME = QUICK ? 3 : 15;
// --systems a,b,c: run only these systems (e.g. skip dst-aes-gcm while it is not available)
const sysIdx = args.indexOf('--systems');
const ONLY = sysIdx >= 0 ? new Set((args[sysIdx + 1] ?? '').split(',').filter(Boolean)) : null;
// --workloads a,b: run only these workloads
const wlIdx = args.indexOf('--workloads');
const ONLY_WL = wlIdx >= 0 ? new Set((args[wlIdx + 1] ?? '').split(',').filter(Boolean)) : null;
// --cpu-prof DIR: each dst engine writes a V8 CPU profile there when it stops (bench/README.md)
const profIdx = args.indexOf('--cpu-prof');
const PROFILE_DIR = profIdx >= 0 ? args[profIdx + 1] : null;
const ENGINE_NODE_ARGS = PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : [];
const SIZE = 1024 * 1024 * 1024;

interface Workload { name: string; rw: string; bs: string; iodepth: number }
const WORKLOADS: Workload[] = [
  { name: 'write-1M-qd16', rw: 'write', bs: '1M', iodepth: 16 },
  { name: 'read-1M-qd16', rw: 'read', bs: '1M', iodepth: 16 },
  { name: 'randwrite-4k-qd32', rw: 'randwrite', bs: '4k', iodepth: 32 },
  { name: 'randread-4k-qd32', rw: 'randread', bs: '4k', iodepth: 32 },
  { name: 'randread-4k-qd1', rw: 'randread', bs: '4k', iodepth: 1 },
];
/** one sequential pass over the device (marks every mirror region of a leg that is away) */
const FILL: Workload = { name: 'fill', rw: 'write', bs: '1M', iodepth: 16 };

function need(tool: string, pkg: string): void {
  try { execFileSync('which', [tool], { stdio: 'ignore' }); } catch {
    throw new Error(`${tool} is not installed: apt-get install ${pkg}`);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function dst(socket: string, ...a: string[]): unknown {
  const out = execFileSync(process.execPath, [DST, '--socket', socket, '--json', ...a], { encoding: 'utf8' });
  return out.trim() ? JSON.parse(out) : null;
}

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** metricsUrl: the remote engine's /metrics (system dst-scraped) */
interface Setup { uri: string; stop(): Promise<void>; rss(): { remote: number; export: number } | null; metricsUrl?: string }

const children: ChildProcess[] = [];
function start(cmd: string, argv: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const c = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  c.stderr!.on('data', (d) => { err = (err + d).slice(-4000); });
  c.on('exit', (code, sig) => { if (code && code !== 0) process.stderr.write(`${cmd} exited ${code ?? sig}: ${err}\n`); });
  children.push(c);
  return c;
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await Promise.race([gone, sleep(5000).then(() => c.kill('SIGKILL'))]);
}

/** `scraped`: the remote engine serves /metrics (bench/scrape.ts runs the scraper). */
async function setupDst(work: string, file: string, cipher: boolean, scraped = false): Promise<Setup> {
  const dirA = mkdtempSync(join(work, 'r')), dirB = mkdtempSync(join(work, 'e'));
  const sockA = join(dirA, 'dst.sock'), sockB = join(dirB, 'dst.sock');
  const engA = start(process.execPath, [...ENGINE_NODE_ARGS, DST, 'engine', '--socket', sockA, '--state-dir', join(dirA, 'state'), '--no-config', '--log-level', 'warn',
    ...(scraped ? METRICS_ARGS : [])]);
  const engB = start(process.execPath, [...ENGINE_NODE_ARGS, DST, 'engine', '--socket', sockB, '--state-dir', join(dirB, 'state'), '--no-config', '--log-level', 'warn']);
  try {
    const setup = await configureDst(work, file, cipher, engA, engB, sockA, sockB);
    return scraped ? { ...setup, metricsUrl: `http://${(dst(sockA, 'status') as { metrics: string }).metrics}/metrics` } : setup;
  } catch (err) {
    await stopChild(engA);
    await stopChild(engB);
    throw err;
  }
}

async function configureDst(work: string, file: string, cipher: boolean, engA: ChildProcess, engB: ChildProcess,
  sockA: string, sockB: string): Promise<Setup> {
  await waitFor('engine sockets', () => existsSync(sockA) && existsSync(sockB));
  await sleep(200);
  dst(sockB, 'node', 'add', 'vol', '--disk', file, '--listen', '127.0.0.1:0');
  dst(sockB, 'security', 'add', 'vol', '--addr', '127.0.0.1', '--perm', 'rw');
  let key: string | null = null;
  if (cipher) {
    key = join(work, 'bench.key');
    writeFileSync(key, randomBytes(32).toString('hex'), { mode: 0o600 });
    dst(sockB, 'crypto', 'set', 'vol', '--cipher', 'aes-gcm', '--cipher-key-file', key);
  }
  const listen = (dst(sockB, 'node', 'start', 'vol') as { listen: string }).listen;
  dst(sockA, 'node', 'add', 'vol', '--remote', listen);
  if (key) dst(sockA, 'crypto', 'set', 'vol', '--cipher', 'aes-gcm', '--cipher-key-file', key);
  const ready = dst(sockA, 'node', 'start', 'vol', '--wait', '10s') as { state: string; nbd: { uri: string } };
  if (ready.state !== 'ready') throw new Error(`dst remote node not ready: ${JSON.stringify(ready)}`);
  return {
    uri: ready.nbd.uri,
    rss: () => ({ remote: peakRssMiB(engA.pid!), export: peakRssMiB(engB.pid!) }),
    async stop() { await stopChild(engA); await stopChild(engB); },
  };
}

/**
 * A two-leg mirror or stripe: the remote engine and one export engine per leg, each leg its own
 * 1 GiB file on tmpfs (the second a copy of the first). A mirror's initial sync (leg 1 from leg 0)
 * is timed first: that is the resync rate with the machine otherwise idle. `policy`: node set options.
 */
async function setupDstLegs(work: string, files: string[], layout: 'mirror' | 'stripe', policy: string[] = []): Promise<MirrorSetup> {
  const engines = files.map((_, i) => {
    const dir = mkdtempSync(join(work, `l${i}`));
    return { dir, sock: join(dir, 'dst.sock'), proc: start(process.execPath, [...ENGINE_NODE_ARGS, DST, 'engine', '--socket', join(dir, 'dst.sock'), '--state-dir', join(dir, 'state'), '--no-config', '--log-level', 'warn']) };
  });
  const dirA = mkdtempSync(join(work, 'r'));
  const sockA = join(dirA, 'dst.sock');
  const engA = start(process.execPath, [...ENGINE_NODE_ARGS, DST, 'engine', '--socket', sockA, '--state-dir', join(dirA, 'state'), '--no-config', '--log-level', 'warn']);
  const stopAll = async (): Promise<void> => {
    await stopChild(engA);
    for (const e of engines) await stopChild(e.proc);
  };
  try {
    await waitFor('engine sockets', () => existsSync(sockA) && engines.every((e) => existsSync(e.sock)));
    await sleep(200);
    const remotes = files.map((file, i) => {
      const sock = engines[i]!.sock;
      dst(sock, 'node', 'add', 'vol', '--disk', file, '--listen', '127.0.0.1:0');
      dst(sock, 'security', 'add', 'vol', '--addr', '127.0.0.1', '--perm', 'rw');
      return ['--remote', `${(dst(sock, 'node', 'start', 'vol') as { listen: string }).listen}/vol`];
    });
    dst(sockA, 'node', 'add', 'vol', '--layout', layout, ...remotes.flat());
    if (policy.length > 0) dst(sockA, 'node', 'set', 'vol', ...policy);
    const t0 = performance.now();
    // the legs' files are shared with the other systems, which overwrite the mirror metadata in leg
    // 0's tail: a mirror here is always a new one
    const init = layout === 'mirror' ? ['--force-init'] : [];
    const ready = dst(sockA, 'node', 'start', 'vol', '--wait', '10s', ...init) as { state: string; size: number; nbd: { uri: string } };
    if (ready.state !== 'ready') throw new Error(`dst ${layout} node not ready: ${JSON.stringify(ready)}`);
    if (layout === 'mirror') {
      await waitFor('the initial sync', () => (dst(sockA, 'node', 'show', 'vol') as { degraded: boolean }).degraded === false, 300_000);
      const s = (performance.now() - t0) / 1000;
      process.stderr.write(`mirror initial sync (resync): ${(ready.size / (1024 * 1024) / s).toFixed(0)} MiB/s (${(ready.size / (1024 * 1024)).toFixed(0)} MiB in ${s.toFixed(1)} s)\n`);
    }
    return {
      uri: ready.nbd.uri,
      socket: sockA,
      legPid: (i) => engines[i]!.proc.pid!,
      rss: () => ({ remote: peakRssMiB(engA.pid!), export: peakRssMiB(engines[0]!.proc.pid!) }),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** dst with the export in front of `nbdkit file` on the same file (issue 17: an NBD backend). */
async function setupDstViaNbdkit(work: string, file: string): Promise<Setup> {
  const sock = join(mkdtempSync(join(work, 'b')), 'nbdkit.sock');
  const server = start('nbdkit', ['-f', '-U', sock, 'file', file]);
  try {
    await waitFor('nbdkit socket', () => existsSync(sock));
    const d = await setupDst(work, `nbd+unix:///?socket=${sock}`, false);
    return { ...d, async stop() { await d.stop(); await stopChild(server); } };
  } catch (err) {
    await stopChild(server);
    throw err;
  }
}

async function setupNbdkit(work: string, file: string, mode: 'plain' | 'retry' | 'tls'): Promise<Setup> {
  const port = await freePort();
  const sock = join(mkdtempSync(join(work, 'k')), 'nbd.sock');
  const psk = join(work, 'psk.keys');
  if (mode === 'tls') writeFileSync(psk, `bench:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const tlsServer = mode === 'tls' ? ['--tls=require', `--tls-psk=${psk}`] : [];
  const server = start('nbdkit', ['-f', '-i', '127.0.0.1', '-p', String(port), ...tlsServer, 'file', file]);
  await sleep(300);
  const filt = mode === 'retry' ? ['--filter=retry'] : [];
  const tlsClient = mode === 'tls' ? ['tls=require', `tls-psk=${psk}`, 'tls-username=bench'] : [];
  const client = start('nbdkit', ['-f', '--unix', sock, ...filt, 'nbd', 'hostname=127.0.0.1', `port=${port}`, ...tlsClient]);
  try {
    await waitFor('nbdkit socket', () => existsSync(sock));
  } catch (err) {
    await stopChild(client);
    await stopChild(server);
    throw err;
  }
  return {
    uri: `nbd+unix:///?socket=${sock}`,
    rss: () => null,
    async stop() { await stopChild(client); await stopChild(server); },
  };
}

/** fio for RUNTIME seconds, or (`timed` false) one pass over the device. */
function fio(uri: string, w: Workload, timed = true): Omit<Row, 'system' | 'rssMiB'> {
  const out = execFileSync('fio', ['--name=bench', '--ioengine=nbd', `--uri=${uri}`, `--rw=${w.rw}`, `--bs=${w.bs}`,
    `--iodepth=${w.iodepth}`, '--size=1G', ...(timed ? ['--time_based', `--runtime=${RUNTIME}`] : []), '--output-format=json'],
  { encoding: 'utf8', maxBuffer: 64 << 20 });
  const job = JSON.parse(out.slice(out.indexOf('{'))).jobs[0];
  const side = w.rw.includes('write') ? job.write : job.read;
  const pct = side.clat_ns?.percentile ?? {};
  return {
    workload: w.name,
    mibps: side.bw_bytes / (1024 * 1024),
    iops: side.iops,
    p50us: (pct['50.000000'] ?? 0) / 1000,
    p99us: (pct['99.000000'] ?? 0) / 1000,
  };
}

async function main(): Promise<void> {
  const repeat = parseRepeat(args);
  need('fio', 'fio');
  need('nbdkit', 'nbdkit');
  // first, while nothing else of the bench runs
  const startup = measureStartup(DST);
  process.stderr.write(`${startupText(startup)}\n`);
  const work = mkdtempSync('/dev/shm/dst-bench-');
  const file = join(work, 'disk.img');
  process.stderr.write(`writing the 1 GiB backing file on tmpfs (${file})\n`);
  const fd = openSync(file, 'w');
  const chunk = randomBytes(16 << 20);
  for (let off = 0; off < SIZE; off += chunk.length) writeSync(fd, chunk);
  closeSync(fd);
  const second = join(work, 'disk2.img');
  const needLegs = ONLY === null || ONLY.has('dst-mirror2') || ONLY.has('dst-stripe2');
  // the resync rows (bench/resync.ts): --workloads resync runs only those
  const resyncRows = (ONLY === null || ONLY.has(RESYNC_SYSTEM)) && (ONLY_WL === null || ONLY_WL.has('resync'));
  if (needLegs) execFileSync('cp', [file, second]);
  const systems: { name: string; setup: () => Promise<Setup> }[] = [
    { name: 'dst', setup: () => setupDst(work, file, false) },
    { name: SCRAPED_SYSTEM, setup: () => setupDst(work, file, false, true) },
    { name: 'nbdkit', setup: () => setupNbdkit(work, file, 'plain') },
    { name: 'dst-aes-gcm', setup: () => setupDst(work, file, true) },
    { name: 'nbdkit-retry', setup: () => setupNbdkit(work, file, 'retry') },
    { name: 'nbdkit-tls', setup: () => setupNbdkit(work, file, 'tls') },
    { name: 'dst-mirror2', setup: () => setupDstLegs(work, [file, second], 'mirror') },
    { name: 'dst-stripe2', setup: () => setupDstLegs(work, [file, second], 'stripe') },
    { name: 'dst-nbdkit', setup: () => setupDstViaNbdkit(work, file) },
  ].filter((s) => ONLY === null || ONLY.has(s.name));
  const runs: Row[] = [];
  try {
    for (const w of WORKLOADS) {
      if (ONLY_WL !== null && !ONLY_WL.has(w.name)) continue;
      for (let round = 1; round <= repeat; round++) for (const s of roundOrder(systems, round)) {
        // the costly variants run 1 MiB workloads only; dst-nbdkit also 4 KiB (the NBD backend's per-request cost)
        const allSizes = s.name === SCRAPED_SYSTEM || s.name === 'dst-nbdkit';
        if (s.name.includes('tls') || (s.name.startsWith('dst-') && !allSizes)) if (!w.name.includes('1M')) continue;
        process.stderr.write(`${s.name} ${w.name}${repeat > 1 ? ` (run ${round}/${repeat})` : ''} ...\n`);
        let setup: Setup;
        try {
          setup = await s.setup();
        } catch (err) {
          process.stderr.write(`${s.name} ${w.name}: setup failed: ${(err as Error).message}\n`);
          continue;
        }
        try {
          if (setup.metricsUrl !== undefined) {
            runs.push(...await scrapeRound(setup.metricsUrl, round, () => fio(setup.uri, w), () => setup.rss(), (c) => children.push(c),
              (line) => process.stderr.write(`${SCRAPED_SYSTEM}: ${line}\n`)));
          } else runs.push({ system: s.name, ...fio(setup.uri, w), rssMiB: setup.rss() });
        } catch (err) {
          process.stderr.write(`${s.name} ${w.name} failed: ${(err as Error).message}\n`);
        } finally {
          await setup.stop();
        }
      }
    }
    for (let round = 1; resyncRows && round <= repeat; round++) {
      process.stderr.write(`${RESYNC_SYSTEM} resync${repeat > 1 ? ` (run ${round}/${repeat})` : ''} ...\n`);
      try {
        runs.push(...await benchResync({
          setup: () => setupDstLegs(work, [file, second], 'mirror', ['--leg-timeout', '1s', '--reconnect-delay', '200ms']),
          fio: (uri, name) => fio(uri, name === 'fill' ? FILL : WORKLOADS.find((w) => w.name === name)!, name !== 'fill'),
          dst, waitFor,
        }, (line) => process.stderr.write(`${RESYNC_SYSTEM}: ${line}\n`)));
      } catch (err) {
        process.stderr.write(`${RESYNC_SYSTEM} resync failed: ${(err as Error).message}\n`);
      }
    }
  } finally {
    for (const c of children) await stopChild(c);
    rmSync(work, { recursive: true, force: true });
  }
  const rows = medianRows(runs);
  printTable(rows, runs, repeat, startup);
  if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ repeat, rows, runs, startup }, null, 2));
}

function printTable(rows: Row[], runs: readonly Row[], repeat: number, startup: Startup): void {
  const pad = (s: string, n: number): string => s.padEnd(n);
  const num = (n: number, d = 0): string => (Number.isNaN(n) ? '-' : n.toFixed(d)).padStart(10);
  if (repeat > 1) console.log(`median of ${repeat} interleaved runs per row`);
  console.log(`${pad('system', 14)}${pad('workload', 20)}${'MiB/s'.padStart(10)}${'IOPS'.padStart(10)}${'p50 µs'.padStart(10)}${'p99 µs'.padStart(10)}  RSS MiB (remote/export)`);
  for (const r of rows) {
    console.log(`${pad(r.system, 14)}${pad(r.workload, 20)}${num(r.mibps, 1)}${num(r.iops)}${num(r.p50us)}${num(r.p99us)}  ${r.rssMiB ? `${r.rssMiB.remote.toFixed(0)}/${r.rssMiB.export.toFixed(0)}` : '-'}`);
  }
  console.log('\nratios');
  for (const w of WORKLOADS) {
    const get = (s: string): Row | undefined => rows.find((r) => r.system === s && r.workload === w.name);
    const d = get('dst');
    const peers = [get('nbdkit'), get('nbdkit-retry')].filter((x): x is Row => Boolean(x));
    const best = peers.length ? Math.max(...peers.map((p) => p.iops)) : NaN;
    if (d && best) console.log(`  ${pad(w.name, 20)} dst / best nbdkit 2-hop = ${(d.iops / best).toFixed(2)}`);
    const g = get('dst-aes-gcm'), tls = get('nbdkit-tls');
    if (g && tls) console.log(`  ${pad(w.name, 20)} dst-aes-gcm / nbdkit-tls = ${(g.iops / tls.iops).toFixed(2)}`);
    if (g && d) console.log(`  ${pad(w.name, 20)} dst-aes-gcm / dst = ${(g.iops / d.iops).toFixed(2)}`);
    for (const legs of ['dst-mirror2', 'dst-stripe2', 'dst-nbdkit']) {
      const l = get(legs);
      if (l && d) console.log(`  ${pad(w.name, 20)} ${legs} / dst = ${(l.iops / d.iops).toFixed(2)}`);
    }
  }
  for (const line of scrapeRatioLines(rows, runs)) console.log(`  ${line}`);
  const resync = resyncRatioText(rows);
  if (resync) console.log(`  ${resync}`);
  console.log(`\n${startupText(startup)}`);
}

main().catch(async (err) => {
  for (const c of children) await stopChild(c);
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
