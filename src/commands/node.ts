// `dst node add|start|stop|del|reconnect|list|show|set`: parse, one control request, render.
import type { NodeAddArgs, NodeShow, Policy } from '../engine/types.js';
import { formatDuration, formatSize } from '../util/parse.js';
import { engineError, defineCommand, defineGroup, makeContext, usage, type CommandContext, type DstCommand } from './context.js';
import { optDuration, optHostPort, optInt, optName, optSize } from './args.js';
import { nodeBlock, nodeLine, nodeTable } from './render.js';
import { DstError } from '../util/errors.js';
import { describeOf } from './help.js';

const name = { describe: 'node name (1-32 of A-Z a-z 0-9 _ -)', type: 'string' } as const;

// ---- add ----

interface AddOpts {
  name: string;
  disk?: string; listen?: string; size?: string; readonly?: boolean; create?: string;
  remote?: string; export?: string; nbdListen?: string;
}

/** Turn `node add` options into the request (syntax only; exit 2 on anything wrong). */
export function nodeAddArgs(o: AddOpts, abs: (p: string) => string): NodeAddArgs {
  const nodeName = optName(o.name);
  const given = (k: keyof AddOpts): boolean => o[k] !== undefined && o[k] !== false;
  if (given('disk') === given('remote')) {
    throw usage(given('disk') ? 'give either --disk or --remote, not both' : 'give --disk PATH (export node) or --remote HOST:PORT (remote node)',
      { hint: 'dst node add NAME --disk PATH --listen ADDR:PORT | --remote HOST:PORT' });
  }
  const size = o.size === undefined ? null : optSize('--size', o.size);
  if (given('disk')) {
    for (const k of ['export', 'nbdListen'] as const) {
      if (given(k)) throw usage(`--${k === 'nbdListen' ? 'nbd-listen' : k} is for remote nodes; it cannot be used with --disk`);
    }
    if (!given('listen')) throw usage('--listen ADDR:PORT is required with --disk (port 0 = any free port)');
    if (!o.disk) throw usage('--disk needs a path');
    return {
      name: nodeName, role: 'export', size,
      disk: abs(o.disk),
      listen: optHostPort('--listen', o.listen, true),
      readonly: o.readonly === true,
      create: o.create === undefined ? null : optSize('--create', o.create),
    };
  }
  for (const k of ['listen', 'readonly', 'create'] as const) {
    if (given(k)) throw usage(`--${k} is for export nodes; it cannot be used with --remote`);
  }
  const exp = o.export === undefined ? null : o.export === '' ? '' : optName(o.export, 'export name');
  return {
    name: nodeName, role: 'remote', size,
    remote: optHostPort('--remote', o.remote, false),
    export: exp,
    nbdListen: o.nbdListen === undefined ? null : optHostPort('--nbd-listen', o.nbdListen, true),
  };
}

const add = defineCommand<AddOpts>({
  command: 'add <name>',
  describe: describeOf('node-add', 'add an export node (--disk, --listen) or a remote node (--remote); does not start it'),
  builder: (y) => y
    .positional('name', name)
    .options({
      disk: { type: 'string', describe: 'export: file or block device to serve', group: 'Export node:' },
      listen: { type: 'string', describe: 'export: ADDR:PORT to listen on (port 0 = any free port)', group: 'Export node:' },
      readonly: { type: 'boolean', describe: 'export: serve read-only', group: 'Export node:' },
      create: { type: 'string', describe: 'export: create a sparse file of SIZE at --disk if missing', group: 'Export node:' },
      remote: { type: 'string', describe: 'remote: HOST:PORT of the export', group: 'Remote node:' },
      export: { type: 'string', describe: 'remote: export name to ask for (default: the export\'s default)', group: 'Remote node:' },
      'nbd-listen': { type: 'string', describe: 'remote: also serve NBD over TCP on ADDR:PORT', group: 'Remote node:' },
      size: { type: 'string', describe: 'limit the size (K M G T; default: the disk\'s size)', group: 'Both:' },
    })
    .example('$0 node add vol --disk /srv/vol.img --listen 0.0.0.0:10825 --create 10G', '')
    .example('$0 node add vol --remote 192.0.2.10:10825', ''),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('node-add', nodeAddArgs(argv, ctx.abs));
    ctx.print(res, (n) => `added ${nodeLine(ctx.chalk, n)}`);
  },
});

// ---- start / stop / del / reconnect ----

export function warnStart(ctx: CommandContext, n: NodeShow, waitMs: number): void {
  if (n.role === 'export' && n.acl !== null && n.acl.length === 0) {
    ctx.warn(`${n.name}: the ACL is empty, so nobody may connect; add an entry with: dst security add ${n.name} --addr IP[/PREFIX] --perm rw`);
  }
  if (n.role === 'remote' && n.state !== 'ready') {
    // The engine normally refuses itself; if it answered with a node that is not ready, say why.
    throw engineError(new DstError('DST_ERR_TIMEOUT',
      `${n.name}: not ready after ${formatDuration(waitMs)} (state ${n.state}${n.reason ? `, reason ${n.reason}` : ''}); it keeps trying, see dst node show ${n.name}`,
      { errno: 'ETIMEDOUT' }));
  }
}

const start = defineCommand<{ name: string; wait: string }>({
  command: 'start <name>',
  describe: describeOf('node-start', 'start serving (export) or connecting (remote); idempotent'),
  builder: (y) => y.positional('name', name).options({
    wait: { type: 'string', default: '10s', describe: 'remote: how long to wait for ready (ms, s, m)' },
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const nodeName = optName(argv.name);
    const waitMs = optDuration('--wait', argv.wait);
    const res = await ctx.request('node-start', { name: nodeName, waitMs });
    warnStart(ctx, res, waitMs);
    ctx.print(res, (n) => nodeLine(ctx.chalk, n));
  },
});

const stop = defineCommand<{ name: string; force?: boolean }>({
  command: 'stop <name>',
  describe: describeOf('node-stop', 'drain and stop: in-flight requests finish (or fail with ESHUTDOWN after 10s)'),
  builder: (y) => y.positional('name', name).options({
    force: { type: 'boolean', default: false, describe: 'fail in-flight requests at once; stop even if attached and mounted' },
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('node-stop', { name: optName(argv.name), force: argv.force === true });
    ctx.print(res, (n) => nodeLine(ctx.chalk, n));
  },
});

const del = defineCommand<{ name: string }>({
  command: 'del <name>',
  aliases: ['delete', 'rm'],
  describe: describeOf('node-del', 'delete a stopped (configured) node'),
  builder: (y) => y.positional('name', name),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('node-del', { name: optName(argv.name) });
    ctx.print(res, (r) => `deleted ${r.name}`);
  },
});

const reconnect = defineCommand<{ name: string }>({
  command: 'reconnect <name>',
  describe: describeOf('node-reconnect', 'remote: drop the connection and handshake again (crypto changes apply)'),
  builder: (y) => y.positional('name', name),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('node-reconnect', { name: optName(argv.name) });
    ctx.print(res, (n) => nodeLine(ctx.chalk, n));
  },
});

// ---- list / show ----

const list = defineCommand<Record<string, never>>({
  command: 'list',
  aliases: ['ls'],
  describe: describeOf('node-list', 'list nodes'),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('node-list', {});
    ctx.print(res, (nodes) => nodeTable(ctx.chalk, nodes));
  },
});

const show = defineCommand<{ name: string }>({
  command: 'show <name>',
  describe: describeOf('node-show', 'show a node: state, addresses, ACL, crypto, policy, statistics'),
  builder: (y) => y.positional('name', name),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('node-show', { name: optName(argv.name) });
    ctx.print(res, (n) => nodeBlock(ctx.chalk, n));
  },
});

// ---- set ----

interface SetOpts {
  name: string;
  resendTimeout?: string; maxResends?: string; pingInterval?: string; reconnectDelay?: string;
  maxInflight?: string; maxRequest?: string; maxHandshakesPerAddr?: string; maxConnsPerAddr?: string;
}

export function nodeSetArgs(o: SetOpts): { name: string } & Partial<Policy> {
  const out: { name: string } & Partial<Policy> = { name: optName(o.name) };
  if (o.resendTimeout !== undefined) out.resendTimeoutMs = optDuration('--resend-timeout', o.resendTimeout);
  if (o.maxResends !== undefined) out.maxResends = optInt('--max-resends', o.maxResends);
  if (o.pingInterval !== undefined) out.pingIntervalMs = optDuration('--ping-interval', o.pingInterval);
  if (o.reconnectDelay !== undefined) out.reconnectDelayMs = optDuration('--reconnect-delay', o.reconnectDelay);
  if (o.maxInflight !== undefined) out.maxInflight = optInt('--max-inflight', o.maxInflight, 1);
  if (o.maxRequest !== undefined) out.maxRequest = optSize('--max-request', o.maxRequest);
  if (o.maxHandshakesPerAddr !== undefined) out.maxHandshakesPerAddr = optInt('--max-handshakes-per-addr', o.maxHandshakesPerAddr, 1);
  if (o.maxConnsPerAddr !== undefined) out.maxConnsPerAddr = optInt('--max-conns-per-addr', o.maxConnsPerAddr, 1);
  if (Object.keys(out).length === 1) {
    throw usage('dst node set: give at least one of --resend-timeout, --max-resends, --ping-interval, --reconnect-delay, --max-inflight, --max-request, --max-handshakes-per-addr, --max-conns-per-addr');
  }
  return out;
}

const set = defineCommand<SetOpts>({
  command: 'set <name>',
  describe: describeOf('node-set', 'change a node\'s policy; applies at once'),
  builder: (y) => y.positional('name', name).options({
    'resend-timeout': { type: 'string', describe: 'dead connection after this long without a byte (default 5s)' },
    'max-resends': { type: 'string', describe: 'replays per transaction (default 12)' },
    'ping-interval': { type: 'string', describe: 'PING after this long without a byte (default 1s)' },
    'reconnect-delay': { type: 'string', describe: 'first reconnect backoff, doubling to 30s (default 1s)' },
    'max-inflight': { type: 'string', describe: 'transactions in flight (default 64, at most 128)' },
    'max-request': { type: 'string', describe: 'split NBD requests above this (default 1M, at most 32M)' },
    'max-handshakes-per-addr': { type: 'string', describe: 'connections from one address still in the handshake (default 8, at most 64)' },
    'max-conns-per-addr': { type: 'string', describe: 'connections from one address in all (default 32, at most 64)' },
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('node-set', nodeSetArgs(argv));
    ctx.print(res, (n) => {
      const p = n.policy;
      return `${nodeLine(ctx.chalk, n)}\n  resend-timeout ${formatDuration(p.resendTimeoutMs)}, max-resends ${p.maxResends}, ping-interval ${formatDuration(p.pingIntervalMs)}, ` +
        `reconnect-delay ${formatDuration(p.reconnectDelayMs)}, max-inflight ${p.maxInflight}, max-request ${formatSize(p.maxRequest)}, ` +
        `max-handshakes-per-addr ${p.maxHandshakesPerAddr}, max-conns-per-addr ${p.maxConnsPerAddr}`;
    });
  },
});

export const nodeSubcommands: readonly DstCommand[] = [add, start, stop, del, reconnect, list, show, set] as readonly DstCommand[];
export const nodeCommand: DstCommand = defineGroup('node', 'Manage nodes: add, start, stop, del, reconnect, list, show, set', nodeSubcommands);
