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
  /** the export's --disk instead of a fresh sparse file (e.g. an NBD URI) */
  disk?: string;
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
  /**
   * `dst crypto set NAME ...` arguments applied to both the export and the remote node before
   * they start, e.g. ['--cipher', 'aes-gcm', '--cipher-key-file', key.path]
   */
  crypto?: string[];
  /** crypto set arguments for the export node only (instead of `crypto`) */
  exportCrypto?: string[];
  /** crypto set arguments for the remote node only (instead of `crypto`) */
  remoteCrypto?: string[];
  /** bind the 127.0.0.1 ACL entry to this key file (`security add --key-file`) */
  aclKeyFile?: string;
  /** ACL address for the entry (default 127.0.0.1) */
  aclAddr?: string;
  /** capture file for the fault proxy (implies viaProxy) */
  capture?: string;
  /**
   * wait (10 s) for the remote node to be ready and fail otherwise (default true). With false the
   * remote is started without waiting and `socket`/`uri` are '' (use for handshakes that must fail).
   */
  waitReady?: boolean;
  /** both engines run with their own config file (`ownConfig`): every change is autosaved, no config save */
  autosave?: boolean;
  /** extra arguments for the remote engine, e.g. ['--metrics-listen', '127.0.0.1:0'] */
  remoteEngineArgs?: string[];
  /** extra arguments for the export engine */
  exportEngineArgs?: string[];
  /** called once both engines run, before any node is added (e.g. to subscribe to events) */
  beforeNodes?: (exp: Engine, rem: Engine) => Promise<void>;
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

/**
 * `node start NAME --wait 0` on a remote node: returns at once; a node that is not ready yet is
 * fine (the CLI exits 1 with DST_ERR_TIMEOUT then), any other failure throws.
 */
export async function startNoWait(e: Engine, name: string): Promise<void> {
  const r = await e.dst(['node', 'start', name, '--wait', '0', '--json']);
  if (r.code === 0 || (r.code === 1 && r.stderr.includes('DST_ERR_TIMEOUT'))) return;
  throw new Error(`dst node start ${name} --wait 0: exited ${r.code}\n${r.stderr}`);
}

export async function startPair(t: TestContext, opts: PairOptions = {}): Promise<Pair> {
  const exportName = opts.exportName ?? 'vol';
  const remoteName = opts.remoteName ?? 'vol';
  const own = opts.autosave === true;
  const exp = await startEngine(t, { ownConfig: own, ...(opts.exportEnv ? { env: opts.exportEnv } : {}), ...(opts.exportEngineArgs ? { args: opts.exportEngineArgs } : {}) });
  const rem = await startEngine(t, { ownConfig: own, ...(opts.remoteEngineArgs ? { args: opts.remoteEngineArgs } : {}) });
  if (opts.beforeNodes) await opts.beforeNodes(exp, rem);
  const disk = opts.disk ?? join(exp.dir, 'disk.img');
  if (opts.disk === undefined) {
    const fd = openSync(disk, 'w');
    ftruncateSync(fd, opts.size ?? 64 * 1024 * 1024);
    closeSync(fd);
  }
  const port = opts.fixedPort ? await freePort() : 0;
  await exp.dstJson(['node', 'add', exportName, '--disk', disk, '--listen', `127.0.0.1:${port}`]);
  const acl = ['security', 'add', exportName, '--addr', opts.aclAddr ?? '127.0.0.1', '--perm', opts.perm ?? 'rw'];
  if (opts.aclKeyFile) acl.push('--key-file', opts.aclKeyFile);
  await exp.dstJson(acl);
  const expCrypto = opts.exportCrypto ?? opts.crypto;
  if (expCrypto?.length) await exp.dstJson(['crypto', 'set', exportName, ...expCrypto]);
  const started = await exp.dstJson<NodeShow>(['node', 'start', exportName]);
  const listen = started.listen!;
  let exportConfig: string | null = null;
  if (opts.fixedPort) {
    exportConfig = join(exp.dir, 'export.conf');
    await exp.dstJson(['config', 'save', exportConfig]);
  }
  const proxy = opts.viaProxy || opts.capture ? await startProxy(t, listen, opts.capture ? { capture: opts.capture } : {}) : null;
  await rem.dstJson(['node', 'add', remoteName, '--remote', proxy ? proxy.listen : listen, '--export', exportName]);
  if (opts.remotePolicy?.length) await rem.dstJson(['node', 'set', remoteName, ...opts.remotePolicy]);
  const remCrypto = opts.remoteCrypto ?? opts.crypto;
  if (remCrypto?.length) await rem.dstJson(['crypto', 'set', remoteName, ...remCrypto]);
  if (opts.waitReady === false) {
    await startNoWait(rem, remoteName);
    return {
      exp, rem, disk, exportName, remoteName, listen, proxy, exportConfig, socket: '', uri: '',
      show: () => rem.dstJson<NodeShow>(['node', 'show', remoteName]),
    };
  }
  const ready = await rem.dstJson<NodeShow>(['node', 'start', remoteName, '--wait', '10s']);
  if (ready.state !== 'ready' || !ready.nbd) throw new Error(`remote node not ready: ${JSON.stringify(ready)}`);
  return {
    exp, rem, disk, exportName, remoteName, listen, proxy, exportConfig, socket: ready.nbd.socket, uri: ready.nbd.uri,
    show: () => rem.dstJson<NodeShow>(['node', 'show', remoteName]),
  };
}
