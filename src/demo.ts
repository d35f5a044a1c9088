// `npm start`: one engine in the foreground with its own runtime and state dirs under
// /tmp/dst-demo-<uid>/, an export node "demo" serving a 1 GiB sparse file (reused on the next run)
// on a free loopback port, and a remote node "vol" connected to it, serving NBD locally.
// Prints the NBD URI and the next commands to try, then runs until Ctrl-C (clean shutdown).
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runEngine, type Engine } from './engine/engine.js';
import { prepareRuntimeDir } from './engine/runtime-dir.js';
import { DstError } from './util/errors.js';
import type { LogLevel } from './util/log.js';

export interface DemoOptions {
  /** base dir (default /tmp/dst-demo-<uid>) */
  base?: string;
  /** size of the sparse disk file (default 1 GiB) */
  size?: number;
  logLevel?: LogLevel;
  /** where the instructions go (default stdout) */
  print?: (text: string) => void;
  /** install SIGINT/SIGTERM handlers (default true) */
  handleSignals?: boolean;
  /** how long to wait for the remote node to be ready (default 10 s) */
  waitMs?: number;
}

export async function runDemo(o: DemoOptions = {}): Promise<Engine> {
  const print = o.print ?? ((t: string) => { process.stdout.write(t); });
  const base = resolve(o.base ?? `/tmp/dst-demo-${process.getuid?.() ?? 0}`);
  await prepareRuntimeDir(base, null);
  const runDir = join(base, 'run');
  const stateDir = join(base, 'state');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const socket = join(runDir, 'dst.sock');
  const disk = join(base, 'demo.img');
  const size = o.size ?? 1024 ** 3;

  const engine = await runEngine({
    socket, stateDir, config: null, group: null, logLevel: o.logLevel ?? 'info', logFormat: 'text',
    handleSignals: o.handleSignals ?? true,
  });
  try {
    await engine.registry.add({ name: 'demo', role: 'export', size: null, disk, listen: '127.0.0.1:0', readonly: false, create: size });
    await engine.registry.securityAdd('demo', '127.0.0.1', 'rw', null);
    await engine.registry.securityAdd('demo', '::1', 'rw', null);
    const exp = await engine.registry.start('demo', 0);
    const listen = exp.listen;
    if (!listen || /:0$/.test(listen)) throw new DstError('DST_ERR_INTERNAL', `demo: the export did not report its port (listen ${listen})`);
    await engine.registry.add({ name: 'vol', role: 'remote', size: null, remote: listen, export: 'demo', nbdListen: null });
    let ready = true;
    try {
      await engine.registry.start('vol', o.waitMs ?? 10_000);
    } catch (err) {
      ready = false;
      print(`warning: ${(err as Error).message}\n`);
    }
    const vol = engine.registry.show('vol');
    const uri = vol.nbd?.uri ?? `nbd+unix:///vol?socket=${join(runDir, 'nbd', 'vol.sock')}`;
    const dst = './bin/dst';
    print([
      '',
      `dst demo: engine ${engine.version}, pid ${process.pid}, socket ${socket}`,
      `  export node "demo": ${disk} (${Math.round(size / 1024 ** 2)} MiB sparse), listening on ${listen}, ACL 127.0.0.1 rw, ::1 rw`,
      `  remote node "vol":  ${vol.state}${vol.reason ? ` (${vol.reason})` : ''} → export demo at ${listen}`,
      `  NBD URI:            ${uri}${ready ? '' : '  (not serving yet)'}`,
      '',
      'Next, in another terminal:',
      `  ${dst} --socket ${socket} status`,
      `  ${dst} --socket ${socket} node list`,
      `  nbdinfo '${uri}'`,
      '',
      'Press Ctrl-C to stop (clean shutdown).',
      '',
    ].join('\n'));
  } catch (err) {
    await engine.shutdown({ force: true });
    throw err;
  }
  return engine;
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  runDemo().then(
    (engine) => engine.closed.then(() => { process.exitCode = 0; }),
    (err) => {
      process.stderr.write(`dst demo: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
