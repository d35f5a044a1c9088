// Fake node runtimes and a registry factory for the engine/registry/config unit tests.
import { CryptoPool } from '../../src/engine/crypto-pool.js';
import { chmodSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '../../src/util/clock.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { EventBus } from '../../src/engine/events.js';
import { Registry } from '../../src/engine/registry.js';
import {
  DEFAULT_LIMITS, emptyStats,
  type EventRecord, type LegConfig, type LegEdit, type RemoteConfig, type NodeConfig, type NodeRuntime, type NodeShow, type NodeState, type RemoteRuntime, type RemoteState, type VerifyReport,
} from '../../src/engine/types.js';

export class FakeRuntime implements RemoteRuntime {
  state: NodeState = 'configured';
  reason: string | null = null;
  changes = 0;
  starts = 0;
  stops: boolean[] = [];
  reconnects = 0;
  /** remote: state after start */
  afterStart: RemoteState = 'ready';
  afterStartReason: string | null = null;
  failStart: Error | null = null;

  constructor(readonly node: { readonly config: NodeConfig }) {}

  async start(): Promise<void> {
    this.starts++;
    if (this.failStart) throw this.failStart;
    if (this.node.config.role === 'export') this.state = 'listening';
    else {
      this.state = this.afterStart;
      this.reason = this.afterStartReason;
    }
  }

  async stop(opts: { force: boolean }): Promise<void> {
    this.stops.push(opts.force);
    this.state = 'configured';
    this.reason = null;
  }

  configChanged(): void {
    this.changes++;
  }

  show(): Pick<NodeShow, 'state' | 'reason' | 'size' | 'listen' | 'nbd' | 'sessionId' | 'permissions' | 'stats'> {
    return { state: this.state, reason: this.reason, size: null, listen: null, nbd: null, sessionId: null, permissions: null, stats: emptyStats() };
  }

  async waitReady(_ms: number): Promise<RemoteState> {
    return this.state as RemoteState;
  }

  reconnect(): void {
    this.reconnects++;
  }

  async verify(): Promise<VerifyReport> {
    return { regions: 0, mismatches: [], repaired: 0 };
  }

  /** the keep of the last resolve */
  resolvedKeep: number | null = null;

  async resolve(keep: number): Promise<void> {
    this.resolvedKeep = keep;
  }

  /** the last leg edit */
  legEdit: LegEdit | null = null;

  /** a leg edit that succeeds: the legs become what the edit says */
  async editLegs(edit: LegEdit, commit: (legs: LegConfig[]) => Promise<void>): Promise<void> {
    this.legEdit = edit;
    const legs = (this.node.config as RemoteConfig).legs;
    await commit(edit.op === 'add' ? [...legs, edit.leg] : legs.filter((_, i) => i !== edit.index));
  }
}

export interface TestRig {
  dir: string;
  registry: Registry;
  events: EventBus;
  seen: EventRecord[];
  runtimes: Map<string, FakeRuntime>;
  logs: string[];
  log: Logger;
  /** make a file of `size` bytes (sparse) under dir */
  disk(name: string, size: number): string;
  /** write a key file (mode 0600 unless given) */
  keyFile(name: string, content: string | Buffer, mode?: number): string;
  /** JSON of everything observable (to check that a refused command changed nothing) */
  snapshot(): string;
  cleanup(): void;
}

export function makeRig(): TestRig {
  const dir = mkdtempSync(join(tmpdir(), 'dst-reg-'));
  const logs: string[] = [];
  const log = createLogger('debug', 'text', (l) => logs.push(l));
  const events = new EventBus({ wallNow: () => 1_700_000_000_000 });
  const seen: EventRecord[] = [];
  events.subscribe(null, (ev) => seen.push(ev));
  const runtimes = new Map<string, FakeRuntime>();
  const make = (node: { readonly config: NodeConfig }): FakeRuntime => {
    const rt = new FakeRuntime(node);
    runtimes.set(node.config.name, rt);
    return rt;
  };
  const registry = new Registry({
    clock: new FakeClock(), log, events, runtimeDir: join(dir, 'run'), stateDir: join(dir, 'state'), limits: DEFAULT_LIMITS, cryptoPool: new CryptoPool(1),
    createExport: make as (n: { readonly config: NodeConfig }) => NodeRuntime,
    createRemote: make, cores: 4, version: '9.9.9', socket: join(dir, 'run', 'dst.sock'),
  });
  return {
    dir, registry, events, seen, runtimes, logs, log,
    disk(name, size) {
      const p = join(dir, name);
      writeFileSync(p, '');
      truncateSync(p, size); // sparse
      return p;
    },
    keyFile(name, content, mode = 0o600) {
      const p = join(dir, name);
      writeFileSync(p, content);
      chmodSync(p, mode);
      return p;
    },
    snapshot() {
      return JSON.stringify({ list: registry.list(), snap: registry.snapshot(), seq: events.seq });
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A free TCP port on 127.0.0.1 (bound then released). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Hold a port busy. */
export async function occupyPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server };
}

export { CRYPTO_KEYS, NODE_SHOW_KEYS, POLICY_KEYS, STATS_KEYS } from '../helpers/shapes.js';

export const HEX_KEY = 'a1'.repeat(32) + '\n';
