// The engine: one foreground process (no daemonizing) that owns the runtime dir, the control
// socket, the node registry and the event bus (DESIGN §2, §4, §6).
//
// runEngine() prepares the dirs, refuses a live engine on the socket (removes a stale one), loads
// the config all-or-nothing, serves the control socket and starts the autostart nodes. With a
// config file and autosave, every change is saved to that file before its reply (config-store.ts).
// It returns
// an Engine; `closed` resolves once shutdown() finished (nodes drained, server closed, socket
// removed). With handleSignals, SIGINT/SIGTERM call shutdown() (a second signal forces it).
// Exiting the process is the caller's job.
import { CryptoPool } from './crypto-pool.js';
import { readFileSync } from 'node:fs';
import { chown, mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { realClock, type Clock } from '../util/clock.js';
import { DstError, errnoOf } from '../util/errors.js';
import { createLogger, type LogFormat, type Logger, type LogLevel, type LogSink } from '../util/log.js';
import { createControlServer } from '../netlink/server.js';
import { createExportNode } from './export/export-node.js';
import { createRemoteNode } from './remote/remote-node.js';
import { formatConfig, readConfigFile, type ParsedConfig } from './config.js';
import { ConfigStore, saveFaultFromEnv } from './config-store.js';
import { createControlHandler, type ControlHandlerFn } from './control.js';
import { EventBus } from './events.js';
import { checkSocketPath, defaultConfigPath } from './paths.js';
import { Registry, type ExportFactory, type RemoteFactory } from './registry.js';
import { clearStaleSocket, prepareRuntimeDir, prepareStateDir, resolveGroup } from './runtime-dir.js';
import { DEFAULT_LIMITS, type ControlApi, type ControlCommand, type Limits } from './types.js';
import { cipherImplementationText } from '../protocol/native-cipher.js';
import { startEngineMetrics, type MetricsServer } from './metrics/server.js';

export interface EngineOptions {
  socket: string;
  stateDir: string;
  /** config file; null = --no-config */
  config: string | null;
  /**
   * A missing config file is an error (--config FILE) rather than an empty config (the default
   * file). Default: required unless `config` is the default path.
   */
  configRequired?: boolean;
  /** --[no-]autosave (false: changes are saved only by `dst config save`); null/undefined: the file's [engine] autosave, else true */
  autosave?: boolean | null;
  /** --group NAME|GID: runtime dir 0750 and socket 0660 owned by that group */
  group: string | null;
  /** null/undefined: the config's [engine] log-level, else info */
  logLevel?: LogLevel | null;
  logFormat?: LogFormat;
  clock?: Clock;
  /** install SIGINT/SIGTERM handlers that call shutdown() */
  handleSignals?: boolean;
  /** engine version (default: package.json) */
  version?: string;
  /** where log lines go (default stderr) */
  logSink?: LogSink;
  limits?: Limits;
  /** node runtime factories (tests); default the real export and remote nodes */
  createExport?: ExportFactory;
  createRemote?: RemoteFactory;
  /** default crypto threads (default: cores) */
  cores?: number;
  /** --metrics-listen ADDR:PORT (port 0: any free one); null/undefined: the config's [engine] metrics-listen, else off */
  metricsListen?: string | null;
}

export interface Engine {
  readonly socket: string;
  readonly runtimeDir: string;
  readonly stateDir: string;
  readonly version: string;
  readonly registry: Registry;
  readonly events: EventBus;
  /** where /metrics is served (ADDR:PORT), null when off */
  readonly metricsAddress: string | null;
  readonly log: Logger;
  /** the control handler (the same one the socket uses): run a command in-process */
  readonly handler: ControlHandlerFn;
  request<C extends ControlCommand>(cmd: C, args: ControlApi[C]['args']): Promise<ControlApi[C]['result']>;
  /** resolves once shutdown() has finished */
  readonly closed: Promise<void>;
  /** stop every node (drain; force: fail in-flight at once), close the server, remove the socket. Idempotent. */
  shutdown(opts?: { force?: boolean }): Promise<void>;
}

let versionCache: string | null = null;
export function engineVersion(): string {
  if (versionCache === null) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      versionCache = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
    } catch {
      versionCache = '0.0.0';
    }
  }
  return versionCache;
}

export async function runEngine(opts: EngineOptions): Promise<Engine> {
  const clock = opts.clock ?? realClock;
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const version = opts.version ?? engineVersion();
  const log = createLogger(opts.logLevel ?? 'info', opts.logFormat ?? 'text', opts.logSink);
  const socket = resolve(opts.socket);
  const stateDir = resolve(opts.stateDir);
  const runtimeDir = dirname(socket);
  const elog = log.child({ op: 'engine' });

  checkSocketPath(socket, 'control socket path');
  const gid = opts.group === null || opts.group === undefined ? null : await resolveGroup(opts.group);
  await prepareRuntimeDir(runtimeDir, gid);
  const stale = await clearStaleSocket(socket);
  if (stale === 'removed') elog.info(`removed a stale control socket ${socket}`);
  await prepareStateDir(stateDir);
  try {
    await mkdir(join(runtimeDir, 'nbd'), { mode: gid === null ? 0o700 : 0o750 });
    if (gid !== null) await chown(join(runtimeDir, 'nbd'), process.getuid?.() ?? 0, gid);
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw new DstError('DST_ERR_INVALID', `runtime dir ${runtimeDir}: cannot create nbd/: ${(err as Error).message}`, { errno: errnoOf(err) });
  }

  const configFile = opts.config === null ? null : resolve(opts.config);
  let parsed: ParsedConfig = { file: '', engine: { logLevel: null }, nodes: [], text: null };
  if (configFile !== null) {
    const required = opts.configRequired ?? configFile !== defaultConfigPath();
    parsed = await readConfigFile(configFile, { required, limits });
  }
  const fault = saveFaultFromEnv();
  if ((opts.logLevel === null || opts.logLevel === undefined) && parsed.engine.logLevel) log.level = parsed.engine.logLevel;

  const events = new EventBus({ log });
  const cores = opts.cores ?? availableParallelism();
  const cryptoPool = new CryptoPool(cores);
  const registry = new Registry({
    clock, log, events, runtimeDir, stateDir, limits, version, socket, cryptoPool,
    createExport: opts.createExport ?? createExportNode,
    createRemote: opts.createRemote ?? createRemoteNode,
    cores,
  });
  // A crashed engine's attachments (loop device, FUSE mount, nbdfuse, /dev/nbdN) are cleaned now.
  await registry.attachments.reconcile();
  if (parsed.nodes.length) {
    await registry.load(parsed.nodes, `config ${parsed.file}`, { start: false });
    elog.info(`loaded ${parsed.nodes.length} nodes from ${parsed.file}`);
  }
  // The loaded nodes are what the file holds; from now on changes go through the store.
  const store = configFile === null ? null : new ConfigStore({
    file: configFile,
    autosave: opts.autosave ?? parsed.engine.autosave ?? true,
    loaded: parsed.text,
    current: () => registry.snapshot(),
    render: (nodes) => formatConfig({ ...parsed.engine, nodes }),
    log: elog, fault,
  });
  if (store) {
    registry.persistWith(store);
    elog.info(`config ${configFile}: ${store.status().autosave ? 'every change is saved to it' : 'autosave off: save changes with dst config save'}`);
  }

  let metrics: MetricsServer | null = null;
  const handler = createControlHandler({
    registry, events, log, version, socket,
    configFile, store,
    logLevel: () => parsed.engine.logLevel,
    autosave: parsed.engine.autosave ?? null,
    metricsListen: parsed.engine.metricsListen ?? null,
    metricsAddress: () => metrics?.address ?? null,
  });
  const server = await createControlServer({
    path: socket,
    socketMode: gid === null ? 0o600 : 0o660,
    handler,
    onSubscribe: (node, push) => events.subscribe(node, push),
    limits, clock, log, version,
  });
  // An engine that cannot serve its metrics does not start (the error names the address).
  try {
    metrics = await startEngineMetrics(opts.metricsListen ?? parsed.engine.metricsListen ?? null, registry, cryptoPool, elog, clock);
  } catch (err) {
    await server.close();
    throw err;
  }
  if (gid !== null) {
    try {
      await chown(socket, process.getuid?.() ?? 0, gid);
    } catch (err) {
      await server.close();
      await metrics?.close();
      throw new DstError('DST_ERR_INVALID', `control socket ${socket}: cannot give it to group ${gid}: ${(err as Error).message}`, { errno: errnoOf(err) });
    }
  }
  elog.info(`engine ${version} listening on ${socket} (pid ${process.pid}, state dir ${stateDir}, cipher ${cipherImplementationText})`);

  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => { resolveClosed = r; });
  let shutting: Promise<void> | null = null;
  const signalHandlers: [NodeJS.Signals, () => void][] = [];

  const shutdown = (o: { force?: boolean } = {}): Promise<void> => {
    const force = o.force === true;
    if (shutting) {
      if (force) {
        elog.warn('forcing shutdown: failing in-flight requests now');
        void registry.stopAll(true);
      }
      return shutting;
    }
    shutting = (async () => {
      elog.info(force ? 'shutting down (forced)' : 'shutting down: draining nodes');
      await registry.stopAll(force);
      await metrics?.close();
      await cryptoPool.close();
      try {
        await server.close();
      } catch (err) {
        elog.warn(`closing the control server: ${(err as Error).message}`, { errno: errnoOf(err) });
      }
      for (const [sig, fn] of signalHandlers) process.off(sig, fn);
      elog.info('stopped');
      resolveClosed();
    })();
    return shutting;
  };

  if (opts.handleSignals) {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const fn = (): void => {
        elog.info(`${sig} received${shutting ? ' again: forcing' : ''}`);
        void shutdown({ force: shutting !== null });
      };
      process.on(sig, fn);
      signalHandlers.push([sig, fn]);
    }
  }

  await registry.startWanted(registry.names());
  // an export asked for port 0 has bound one now: saved, so its remotes find it after a restart
  await store?.settle('engine start');

  return {
    socket, runtimeDir, stateDir, version, registry, events, log, handler, closed, shutdown, metricsAddress: metrics?.address ?? null,
    request: (cmd, args) => handler(cmd, args as object, {}) as never,
  };
}
