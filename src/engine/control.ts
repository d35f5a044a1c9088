// Control handlers: each ControlCommand mapped to registry calls. Before a command that names a
// node runs, the node's state and role are checked against the family table (src/netlink/family.ts),
// so a refused command changes nothing. `hello` and `subscribe` are answered by the server itself;
// they are handled here too for direct callers (tests, the demo).
import { DstError, errnoOf } from '../util/errors.js';
import { parseLegSpec } from '../util/parse.js';
import type { Logger, LogLevel } from '../util/log.js';
import { appliesTo, FAMILY } from '../netlink/family.js';
import { formatConfig, readConfigFile } from './config.js';
import { writeFileAtomic } from './atomic-file.js';
import type { ConfigStore } from './config-store.js';
import type { EventBus } from './events.js';
import type { Registry } from './registry.js';
import type { ControlApi, ControlCommand, CryptoSetArgs, NodeAddArgs, Policy } from './types.js';
import { engineRates } from './metrics/collect.js';

export interface ControlDeps {
  registry: Registry;
  events: EventBus;
  log: Logger;
  version: string;
  socket: string;
  /** where /metrics is served now (null: off) */
  metricsAddress?: () => string | null;
  /** the config file's [engine] metrics-listen (config show writes it back) */
  metricsListen?: string | null;
  /** the config file the engine was started with (null = --no-config): the default of config save */
  configFile: string | null;
  /** the [engine] log-level as the config file had it (null: none), written back by config show/save */
  logLevel: () => LogLevel | null;
  /** the [engine] autosave as the config file had it (null/undefined: none) */
  autosave?: boolean | null;
  /** keeps `configFile` true to what runs (absent with --no-config) */
  store?: ConfigStore | null;
}

export type ControlHandlerFn = (cmd: ControlCommand, args: object, peer: { uid?: number }) => Promise<object | object[]>;

const opName = (cmd: string): string => cmd.replace(/-/g, ' ');

function str(args: Record<string, unknown>, key: string, where: string): string {
  const v = args[key];
  if (typeof v !== 'string') throw new DstError('DST_ERR_INVALID', `${where}: ${key} missing`, { errno: 'EINVAL' });
  return v;
}

/** Refuse `cmd` on a node whose state or role the family table does not permit. */
export function checkTable(registry: Registry, cmd: ControlCommand, name: string): void {
  const spec = FAMILY[cmd];
  if (!registry.has(name)) return; // the handler reports NOT_FOUND with its own wording
  const role = registry.config(name).role;
  if (!appliesTo(cmd, role)) {
    const roles = spec.roles === 'any' ? '' : spec.roles.join(' or ');
    throw new DstError('DST_ERR_INVALID', `${opName(cmd)} ${name}: ${name} is ${role === 'export' ? 'an export' : 'a remote'} node; this command applies to ${roles} nodes`, { errno: 'EINVAL' });
  }
  if (spec.states !== 'any') registry.checkState(cmd, name, spec.states);
}

export function createControlHandler(deps: ControlDeps): ControlHandlerFn {
  const { registry, log } = deps;

  const configShow = (): string => formatConfig({ logLevel: deps.logLevel(), autosave: deps.autosave ?? null, metricsListen: deps.metricsListen ?? null, nodes: registry.snapshot() });
  const store = deps.store ?? null;

  async function dispatch(cmd: ControlCommand, a: Record<string, unknown>): Promise<object | object[]> {
    switch (cmd) {
      case 'hello': {
        const v = a.version;
        if (typeof v === 'string' && v !== deps.version) {
          throw new DstError('DST_ERR_VERSION', `hello: the CLI is version ${v}, the engine is version ${deps.version}; use the same version`, { errno: 'EPROTO' });
        }
        return { version: deps.version, pid: process.pid } satisfies ControlApi['hello']['result'];
      }
      case 'node-add':
        return registry.add(a as unknown as NodeAddArgs);
      case 'node-start': {
        const waitMs = typeof a.waitMs === 'number' ? a.waitMs : 10_000;
        return registry.start(str(a, 'name', 'node start'), waitMs, { degraded: a.degraded === true, forceInit: a.forceInit === true });
      }
      case 'node-stop':
        return registry.stop(str(a, 'name', 'node stop'), a.force === true);
      case 'node-del':
        return registry.del(str(a, 'name', 'node del'));
      case 'node-reconnect':
        return registry.reconnect(str(a, 'name', 'node reconnect'));
      case 'node-list':
        return registry.list();
      case 'node-show':
        return registry.show(str(a, 'name', 'node show'));
      case 'node-set': {
        const { name: _n, ...patch } = a;
        return registry.set(str(a, 'name', 'node set'), patch as Partial<Policy>);
      }
      case 'node-verify': {
        const from = a.from;
        return registry.remoteRuntime(str(a, 'name', 'node verify'), 'node verify').verify({ repair: a.repair === true, from: typeof from === 'number' ? from : null });
      }
      case 'node-resolve':
        await registry.remoteRuntime(str(a, 'name', 'node resolve'), 'node resolve').resolve(Number(a.keep));
        return registry.show(String(a.name));
      case 'node-leg-add': {
        const leg = parseLegSpec(`${str(a, 'remote', 'node leg add')}${typeof a.export === 'string' ? `/${a.export}` : ''}`, 'node leg add: leg address', null);
        return registry.editLegs(str(a, 'name', 'node leg add'), { op: 'add', leg, forceInit: a.forceInit === true });
      }
      case 'node-leg-del':
        return registry.editLegs(str(a, 'name', 'node leg del'), { op: 'del', index: Number(a.leg), force: a.force === true });
      case 'security-add':
        return registry.securityAdd(str(a, 'name', 'security add'), str(a, 'addr', 'security add'), String(a.perm ?? ''),
          typeof a.keyFile === 'string' ? a.keyFile : null);
      case 'security-del':
        return registry.securityDel(str(a, 'name', 'security del'), str(a, 'addr', 'security del'));
      case 'security-list':
        return registry.securityList(str(a, 'name', 'security list'));
      case 'security-load':
        return registry.securityLoad(str(a, 'name', 'security load'), (a.entries ?? []) as { addr: unknown; perm: unknown }[]);
      case 'crypto-set':
        return registry.cryptoSet(a as unknown as CryptoSetArgs);
      case 'crypto-show':
        return registry.cryptoShow(str(a, 'name', 'crypto show'));
      case 'crypto-clear':
        return registry.cryptoClear(str(a, 'name', 'crypto clear'));
      case 'status':
        return {
          ...registry.status({ socket: deps.socket, version: deps.version }),
          metrics: deps.metricsAddress?.() ?? null,
          rates: engineRates(registry),
          // without a file, whatever runs is unsaved
          config: store?.status() ?? { file: null, autosave: false, unsaved: registry.names().length > 0 },
        } satisfies ControlApi['status']['result'];
      case 'config-show':
        return { text: configShow() };
      case 'config-save': {
        const file = typeof a.file === 'string' && a.file !== '' ? a.file : deps.configFile;
        if (file === null) {
          throw new DstError('DST_ERR_INVALID', 'config save: the engine runs with --no-config; give a FILE to save to', { errno: 'EINVAL' });
        }
        if (store !== null && file === store.file) await store.saveNow('config save', a.force === true);
        else await writeFileAtomic(file, configShow());
        log.info(`saved ${registry.names().length} nodes to ${file}`, { op: 'config save' });
        return { file };
      }
      case 'config-load': {
        const file = str(a, 'file', 'config load');
        const parsed = await readConfigFile(file, { required: true });
        const nodes = await registry.load(parsed.nodes, `config load ${file}`, { start: true });
        log.info(`loaded ${nodes.length} nodes from ${file}`, { op: 'config load' });
        return { nodes };
      }
      case 'attach': {
        const method = a.method === undefined || a.method === null ? 'auto' : a.method;
        if (method !== 'auto' && method !== 'nbd' && method !== 'fuse') {
          throw new DstError('DST_ERR_INVALID', `attach: method must be auto, nbd or fuse, not ${JSON.stringify(method)}`, { errno: 'EINVAL' });
        }
        return registry.attach(str(a, 'name', 'attach'), method);
      }
      case 'detach':
        return registry.detach(str(a, 'name', 'detach'), a.force === true);
      case 'subscribe': {
        const node = typeof a.node === 'string' ? a.node : null;
        return deps.events.subscribedRecord(node);
      }
      default: {
        const never: never = cmd;
        throw new DstError('DST_ERR_INVALID', `unknown command ${String(never)}`, { errno: 'EOPNOTSUPP' });
      }
    }
  }

  return async (cmd, args) => {
    const a = (args ?? {}) as Record<string, unknown>;
    if (!(cmd in FAMILY)) throw new DstError('DST_ERR_INVALID', `unknown command ${String(cmd)}`, { errno: 'EOPNOTSUPP' });
    if (typeof a.name === 'string') checkTable(registry, cmd, a.name);
    try {
      return await dispatch(cmd, a);
    } catch (err) {
      if (err instanceof DstError) {
        log.debug(`refused: ${err.message}`, { op: opName(cmd), node: typeof a.name === 'string' ? a.name : undefined, errno: err.errno, code: err.code });
        throw err;
      }
      log.error(`failed: ${(err as Error)?.stack ?? String(err)}`, { op: opName(cmd), errno: errnoOf(err) });
      throw new DstError('DST_ERR_INTERNAL', `${opName(cmd)}: ${(err as Error)?.message ?? String(err)}`, { errno: errnoOf(err), cause: err });
    }
  };
}
