// Two engines on loopback: engine "exp" exports a file, engine "rem" runs a remote node for it.
import type { TestContext } from 'node:test';
import { join } from 'node:path';
import { openSync, ftruncateSync, closeSync } from 'node:fs';
import { startEngine, type Engine } from './engine.js';
import { createServer } from 'node:net';
import { startProxy, type ProxyHandle } from './proxy.js';
import type { NodeShow } from '../../src/engine/types.js';

/** A port that was free a moment ago (bind 0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface PairOptions {
  /** export size in bytes (sparse file) */
  size?: number;
  /** ACL perm for 127.0.0.1 */
  perm?: 'r' | 'w' | 'rw';
  /** extra `dst node set` args for the remote node, e.g. ['--resend-timeout', '300ms'] */
  remotePolicy?: string[];
  exportName?: string;
  remoteName?: string;
  /** bind the export to a fixed free port (so a restarted export engine comes back on it) */
  fixedPort?: boolean;
  /** put the product's fault proxy between the remote and the export */
  viaProxy?: boolean;
  /** environment for the export engine (test switches such as DST_TEST_HOLD_WRITE) */
  exportEnv?: Record<string, string>;
}

export interface Pair {
  exp: Engine;
  rem: Engine;
  disk: string;
  exportName: string;
  remoteName: string;
  /** "127.0.0.1:PORT" the export listens on */
  listen: string;
  /** the fault proxy between remote and export, when viaProxy */
  proxy: ProxyHandle | null;
  /** the export engine's saved config (fixedPort pairs), to restart it with */
  exportConfig: string | null;
  /** NBD unix socket of the remote node */
  socket: string;
  /** nbd+unix URI of the remote node */
  uri: string;
  show(): Promise<NodeShow>;
}

export async function startPair(t: TestContext, opts: PairOptions = {}): Promise<Pair> {
  const exportName = opts.exportName ?? 'vol';
  const remoteName = opts.remoteName ?? 'vol';
  const exp = await startEngine(t, opts.exportEnv ? { env: opts.exportEnv } : {});
  const rem = await startEngine(t);
  const disk = join(exp.dir, 'disk.img');
  const fd = openSync(disk, 'w');
  ftruncateSync(fd, opts.size ?? 64 * 1024 * 1024);
  closeSync(fd);
  const port = opts.fixedPort ? await freePort() : 0;
  await exp.dstJson(['node', 'add', exportName, '--disk', disk, '--listen', `127.0.0.1:${port}`]);
  await exp.dstJson(['security', 'add', exportName, '--addr', '127.0.0.1', '--perm', opts.perm ?? 'rw']);
  const started = await exp.dstJson<NodeShow>(['node', 'start', exportName]);
  const listen = started.listen!;
  let exportConfig: string | null = null;
  if (opts.fixedPort) {
    exportConfig = join(exp.dir, 'export.conf');
    await exp.dstJson(['config', 'save', exportConfig]);
  }
  const proxy = opts.viaProxy ? await startProxy(t, listen) : null;
  await rem.dstJson(['node', 'add', remoteName, '--remote', proxy ? proxy.listen : listen, '--export', exportName]);
  if (opts.remotePolicy?.length) await rem.dstJson(['node', 'set', remoteName, ...opts.remotePolicy]);
  const ready = await rem.dstJson<NodeShow>(['node', 'start', remoteName, '--wait', '10s']);
  if (ready.state !== 'ready' || !ready.nbd) throw new Error(`remote node not ready: ${JSON.stringify(ready)}`);
  return {
    exp, rem, disk, exportName, remoteName, listen, proxy, exportConfig, socket: ready.nbd.socket, uri: ready.nbd.uri,
    show: () => rem.dstJson<NodeShow>(['node', 'show', remoteName]),
  };
}
