// The CLI run in-process: main(argv, { io, connect, ... }) against a fake control client that
// records what each command sends and answers from the test's responders (test/unit/cli-*.test.ts).
import assert from 'node:assert/strict';
import { main, type ControlClientLike, type EngineRunner } from '../../src/cli.js';
import { DstError } from '../../src/util/errors.js';
import {
  DEFAULT_POLICY, deadlineMs, emptyStats, type ControlApi, type ControlCommand, type CryptoShow, type EventRecord, type NodeShow, type StatusShow,
} from '../../src/engine/types.js';

export type Responder = { [C in ControlCommand]?: (args: ControlApi[C]['args']) => ControlApi[C]['result'] | Promise<ControlApi[C]['result']> };

export interface Harness {
  calls: { cmd: ControlCommand; args: unknown }[];
  sockets: string[];
  closes: number;
  out: string;
  err: string;
}

export interface RunOptions {
  responses?: Responder;
  noEngine?: boolean;
  connectError?: Error;
  env?: NodeJS.ProcessEnv;
  isTTY?: boolean;
  runEngine?: EngineRunner;
  signal?: AbortSignal;
  events?: (onEvent: (ev: EventRecord) => void, closed: () => void) => void;
}

export const CWD = '/work/here';
export const ENV_SOCKET = '/tmp/dst-test/dst.sock';

export async function run(argv: string[], o: RunOptions = {}): Promise<Harness & { code: number }> {
  const h: Harness = { calls: [], sockets: [], closes: 0, out: '', err: '' };
  const connect = async (path: string): Promise<ControlClientLike> => {
    h.sockets.push(path);
    if (o.connectError) throw o.connectError;
    if (o.noEngine) throw new DstError('DST_ERR_NO_ENGINE', `no engine at ${path}: connect: ENOENT (start one with: dst engine)`, { errno: 'ENOENT' });
    return {
      request: (async (cmd: ControlCommand, args: unknown) => {
        h.calls.push({ cmd, args });
        const r = (o.responses as Record<string, ((a: unknown) => unknown) | undefined> | undefined)?.[cmd];
        if (!r) throw new DstError('DST_ERR_INTERNAL', `test: no response for ${cmd}`);
        return r(args);
      }) as ControlClientLike['request'],
      subscribe: async (node, onEvent) => {
        h.calls.push({ cmd: 'subscribe', args: { node } });
        let resolveClosed!: () => void;
        const closed = new Promise<void>((r) => { resolveClosed = r; });
        onEvent({ seq: 0, ts: 1_700_000_000_000, node: null, event: 'subscribed' });
        o.events?.(onEvent, resolveClosed);
        return { closed, close: () => resolveClosed() };
      },
      close: () => { h.closes++; },
    };
  };
  const code = await main(argv, {
    io: { out: (t) => { h.out += t; }, err: (t) => { h.err += t; }, isTTY: o.isTTY ?? false },
    connect,
    env: o.env ?? { DST_SOCKET: ENV_SOCKET },
    cwd: CWD,
    ...(o.runEngine ? { runEngine: o.runEngine } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  return { ...h, code };
}

export const CRYPTO_NONE: CryptoShow = { cipher: 'none', hash: 'none', suite: 'none', threads: 4, cipherKeyFile: null, hashKeyFile: null };

export function exportNode(over: Partial<NodeShow> = {}): NodeShow {
  return {
    name: 'vol', role: 'export', state: 'configured', reason: null, size: 1024 ** 3, autostart: false,
    disk: '/srv/vol.img', listen: '127.0.0.1:10825', readonly: false, acl: [{ addr: '10.0.0.0/8', perm: 'rw', keyFile: null }],
    remote: null, export: null, layout: null, chunk: null, region: null, degraded: null, legs: null, verify: null, splitBrain: null, uuid: null,
    permissions: null, nbd: null, attachment: null, sessionId: null, backend: null,
    policy: { ...DEFAULT_POLICY, deadlineMs: deadlineMs(DEFAULT_POLICY) }, stats: emptyStats(), crypto: CRYPTO_NONE, latency: null,
    ...over,
  };
}

export function remoteNode(over: Partial<NodeShow> = {}): NodeShow {
  return exportNode({
    name: 'rv', role: 'remote', state: 'ready', disk: null, listen: null, readonly: null, acl: null,
    remote: '192.0.2.10:10825', export: null, layout: 'single', permissions: 'rw', sessionId: '0123456789abcdef0123456789abcdef',
    nbd: { socket: '/run/dst/nbd/rv.sock', uri: 'nbd+unix:///?socket=/run/dst/nbd/rv.sock', listen: null },
    ...over,
  });
}

export const ok = (n: NodeShow) => () => n;

export function jsonError(err: string): { code: string; errno: string | null; message: string } {
  const parsed = JSON.parse(err) as { error: { code: string; errno: string | null; message: string } };
  assert.deepEqual(Object.keys(parsed), ['error']);
  assert.deepEqual(Object.keys(parsed.error).sort(), ['code', 'errno', 'message']);
  return parsed.error;
}

export function statusFixture(): StatusShow {
  return {
    version: '0.1.0', pid: 4242, uptimeMs: 3_723_000, socket: ENV_SOCKET, stateDir: '/var/lib/dst',
    limits: { maxControlMessage: 1 << 20, controlPartialTimeoutMs: 10_000, maxConnectionsPerExport: 64, helloTimeoutMs: 10_000,
      maxInflightPerConnection: 128, maxInflightCap: 128, maxRequestCap: 32 << 20 },
    cryptoThreads: 4,
    cipherImpl: 'node:crypto: DST_NATIVE_CIPHER=0', diskLock: 'flock (native addon)', fileOps: 'fallback: native file ops switched off by DST_NATIVE=0',
    heap: 'full GC + malloc_trim after large connections close, crypto workers: young GC every 4 MiB',
    socketReads: 'user buffers (onread adoption): no connection yet',
    nodes: [{ name: 'vol', role: 'export', state: 'listening', attachment: null }],
    config: { file: '/etc/dst/dst.conf', autosave: true, unsaved: false },
    metrics: null, rates: { readIops: 0, writeIops: 0, readBytesPerSecond: 0, writeBytesPerSecond: 0 },
  };
}
