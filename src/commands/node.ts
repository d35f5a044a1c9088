// `dst node add|start|stop|del|reconnect|list|show|set`: parse, one control request, render.
import { DEFAULT_CHUNK, DEFAULT_LIMITS, DEFAULT_REGION, type Layout, type NodeAddArgs, type NodeShow, type Policy } from '../engine/types.js';
import { checkPowerOfTwoSize } from '../engine/layout/map.js';
import { POLICY_TABLE, optionName, policyHelp } from '../engine/policy.js';
import { formatDuration, parseLegSpec, parseSize } from '../util/parse.js';
import { engineError, defineCommand, defineGroup, makeContext, usage, type CommandContext, type DstCommand } from './context.js';
import { checked, optDuration, optHostPort, optInt, optName, optSize } from './args.js';
import { nodeBlock, nodeLine, nodeTable, policyLine } from './render.js';
import { DstError } from '../util/errors.js';
import { describeOf } from './help.js';
import { legCommand } from './node-leg.js';
import { isNbdUri, parseNbdUri } from '../protocol/nbd-uri.js';

const name = { describe: 'node name (1-32 of A-Z a-z 0-9 _ -)', type: 'string' } as const;

// ---- add ----

interface AddOpts {
  name: string;
  disk?: string; listen?: string; size?: string; readonly?: boolean; create?: string;
  remote?: string | string[]; export?: string; nbdListen?: string;
  layout?: string; chunk?: string; region?: string;
}

const MULTI_LAYOUTS = ['mirror', 'linear', 'stripe'] as const;

/** A stripe chunk or mirror region option: a size that is a power of two (4K..1G). */
function optPowerOfTwo(option: string, v: string): number {
  return checked(option, 'size', v, (x, what) => checkPowerOfTwoSize(parseSize(x, what), `invalid ${what} ${JSON.stringify(String(x).trim())}`));
}

/** Turn `node add` options into the request (syntax only; exit 2 on anything wrong). */
export function nodeAddArgs(o: AddOpts, abs: (p: string) => string): NodeAddArgs {
  const nodeName = optName(o.name);
  const given = (k: keyof AddOpts): boolean => o[k] !== undefined && o[k] !== false;
  if (given('disk') === given('remote')) {
    throw usage(given('disk') ? 'give either --disk or --remote, not both' : 'give --disk PATH (export node) or --remote HOST:PORT (remote node)',
      { hint: 'dst node add NAME --disk PATH --listen ADDR:PORT | --remote HOST:PORT[/EXPORT] ...' });
  }
  const size = o.size === undefined ? null : optSize('--size', o.size);
  if (given('disk')) {
    for (const k of ['export', 'nbdListen', 'layout', 'chunk', 'region'] as const) {
      if (given(k)) throw usage(`--${k === 'nbdListen' ? 'nbd-listen' : k} is for remote nodes; it cannot be used with --disk`);
    }
    if (!given('listen')) throw usage('--listen ADDR:PORT is required with --disk (port 0 = any free port)');
    if (!o.disk) throw usage('--disk needs a path');
    return {
      name: nodeName, role: 'export', size,
      disk: isNbdUri(o.disk) ? nbdDisk(o.disk, o.create) : abs(o.disk),
      listen: optHostPort('--listen', o.listen, true),
      readonly: o.readonly === true,
      create: o.create === undefined ? null : optSize('--create', o.create),
    };
  }
  for (const k of ['listen', 'readonly', 'create'] as const) {
    if (given(k)) throw usage(`--${k} is for export nodes; it cannot be used with --remote`);
  }
  const exp = o.export === undefined ? null : o.export === '' ? null : optName(o.export, 'export name');
  const remotes = ([] as string[]).concat(o.remote ?? []);
  const legs = remotes.map((r, i) => checked('--remote', remotes.length > 1 ? `leg ${i} address` : 'address', r, (x, what) => parseLegSpec(x, what, exp)));
  const nbdListen = o.nbdListen === undefined ? null : optHostPort('--nbd-listen', o.nbdListen, true);
  const layout = o.layout ?? 'single';
  if (layout === 'single') {
    if (legs.length > 1) throw usage(`${legs.length} --remote options need --layout ${MULTI_LAYOUTS.join('|')}`);
    for (const k of ['chunk', 'region'] as const) if (given(k)) throw usage(`--${k} needs --layout ${k === 'chunk' ? 'stripe' : 'mirror'}`);
    return { name: nodeName, role: 'remote', size, remote: legs[0]!.remote, export: legs[0]!.export, nbdListen };
  }
  if (!(MULTI_LAYOUTS as readonly string[]).includes(layout)) {
    throw usage(`invalid layout ${JSON.stringify(layout)} for --layout: use ${MULTI_LAYOUTS.join(', ')}`);
  }
  // a mirror may start with one leg; linear and stripe need at least two
  if (layout !== 'mirror' && legs.length < 2) {
    throw usage(`--layout ${layout} needs at least two --remote (one per leg, in leg order); got ${legs.length}`);
  }
  if (given('chunk') && layout !== 'stripe') throw usage('--chunk is for --layout stripe');
  if (given('region') && layout !== 'mirror') throw usage('--region is for --layout mirror');
  return {
    name: nodeName, role: 'remote', size, nbdListen,
    layout: layout as Layout, legs,
    chunk: o.chunk === undefined ? DEFAULT_CHUNK : optPowerOfTwo('--chunk', o.chunk),
    region: o.region === undefined ? DEFAULT_REGION : optPowerOfTwo('--region', o.region),
  };
}

/** A --disk that is an NBD URI: checked here (syntax), kept as written, never made absolute or created. */
function nbdDisk(uri: string, create: string | undefined): string {
  if (create !== undefined) throw usage(`--create cannot be used with --disk ${uri}: an NBD URI names a disk its server owns`);
  try {
    parseNbdUri(uri);
  } catch (err) {
    throw usage(`--disk: ${(err as Error).message}`, { hint: 'nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH' });
  }
  return uri;
}

const add = defineCommand<AddOpts>({
  command: 'add <name>',
  describe: describeOf('node-add', 'add an export node (--disk, --listen) or a remote node (--remote); does not start it'),
  builder: (y) => y
    .positional('name', name)
    .options({
      disk: { type: 'string', describe: 'export: file or block device to serve, or an NBD server (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH)', group: 'Export node:' },
      listen: { type: 'string', describe: 'export: ADDR:PORT to listen on (port 0 = any free port)', group: 'Export node:' },
      readonly: { type: 'boolean', describe: 'export: serve read-only', group: 'Export node:' },
      create: { type: 'string', describe: 'export: create a sparse file of SIZE at --disk if missing', group: 'Export node:' },
      remote: { type: 'string', array: true, describe: 'remote: HOST:PORT[/EXPORT] of an export; repeat once per leg, in leg order', group: 'Remote node:' },
      export: { type: 'string', describe: 'remote: export name to ask for where --remote names none (default: the export\'s default)', group: 'Remote node:' },
      layout: { type: 'string', describe: 'remote: build one device from several --remote: mirror, linear or stripe', group: 'Remote node:' },
      chunk: { type: 'string', describe: 'stripe: chunk size, a power of two ≥ 4K (default 512K)', group: 'Remote node:' },
      region: { type: 'string', describe: 'mirror: out-of-sync tracking unit, a power of two ≥ 4K (default 1M)', group: 'Remote node:' },
      'nbd-listen': { type: 'string', describe: 'remote: also serve NBD over TCP on ADDR:PORT', group: 'Remote node:' },
      size: { type: 'string', describe: 'limit the size (K M G T; default: the disk\'s size)', group: 'Both:' },
    })
    .example('$0 node add vol --disk /srv/vol.img --listen 0.0.0.0:10825 --create 10G', '')
    .example('$0 node add vol --disk nbd://127.0.0.1:10809/img --listen 0.0.0.0:10825', '')
    .example('$0 node add vol --remote 192.0.2.10:10825', '')
    .example('$0 node add vol --layout mirror --remote 192.0.2.10:10825/a --remote 192.0.2.11:10825/b', ''),
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

const start = defineCommand<{ name: string; wait: string; degraded?: boolean; 'force-init'?: boolean }>({
  command: 'start <name>',
  describe: describeOf('node-start', 'start serving (export) or connecting (remote); idempotent'),
  builder: (y) => y.positional('name', name).options({
    wait: { type: 'string', default: '10s', describe: 'remote: how long to wait for ready (ms, s, m)' },
    degraded: { type: 'boolean', default: false, describe: 'mirror without a state-dir record: assemble from the legs reached (a leg away may hold newer data)' },
    'force-init': { type: 'boolean', default: false, describe: 'mirror: initialise legs that hold another mirror\'s metadata or none in common (their data is overwritten)' },
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const nodeName = optName(argv.name);
    const waitMs = optDuration('--wait', argv.wait);
    const res = await ctx.request('node-start', {
      name: nodeName, waitMs, ...(argv.degraded === true ? { degraded: true } : {}), ...(argv['force-init'] === true ? { forceInit: true } : {}),
    });
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

/** `node set` options: one per row of the policy table, by yargs name. */
type SetOpts = { name: string } & Record<string, string | undefined>;

export function nodeSetArgs(o: SetOpts): { name: string } & Partial<Policy> {
  const out: { name: string } & Partial<Policy> = { name: optName(o.name) };
  for (const k of POLICY_TABLE) {
    const v = o[optionName(k)];
    if (v === undefined) continue;
    const option = `--${k.key}`;
    out[k.field] = k.kind === 'duration' ? optDuration(option, v) : k.kind === 'size' ? optSize(option, v) : optInt(option, v, k.min);
  }
  if (Object.keys(out).length === 1) {
    throw usage(`dst node set: give at least one of ${POLICY_TABLE.map((k) => `--${k.key}`).join(', ')}`);
  }
  return out;
}

const set = defineCommand<SetOpts>({
  command: 'set <name>',
  describe: describeOf('node-set', 'change a node\'s policy; applies at once'),
  builder: (y) => y.positional('name', name).options(Object.fromEntries(POLICY_TABLE.map((k) =>
    [k.key, { type: 'string', describe: policyHelp(k, DEFAULT_LIMITS) } as const]))),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('node-set', nodeSetArgs(argv));
    ctx.print(res, (n) => `${nodeLine(ctx.chalk, n)}\n  ${policyLine(n.policy)}`);
  },
});

// ---- verify ----

const verify = defineCommand<{ name: string; repair?: boolean; from?: string }>({
  command: 'verify <name>',
  describe: describeOf('node-verify', 'mirror: compare every region across the in-sync legs while it serves; waits for the pass'),
  builder: (y) => y.positional('name', name).options({
    repair: { type: 'boolean', default: false, describe: 'copy mismatching regions from --from (or the majority of three or more legs)' },
    from: { type: 'string', describe: 'with --repair: the leg index that is right' },
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const from = argv.from === undefined ? null : optInt('--from', argv.from, 0, 31);
    if (from !== null && argv.repair !== true) throw usage('dst node verify: --from names the source of repairs; give --repair too');
    const nodeName = optName(argv.name);
    const res = await ctx.request('node-verify', { name: nodeName, repair: argv.repair === true, from });
    ctx.print(res, (r) => [
      `${nodeName}: ${r.regions} regions verified, ${r.mismatches.length} mismatching, ${r.repaired} repaired`,
      ...r.mismatches.map((m) => `  offset ${m.offset} length ${m.length}: leg ${m.legs.join(', ')} differ${m.legs.length === 1 ? 's' : ''}`),
    ].join('\n'));
    if (res.mismatches.length > res.repaired) {
      // after the report: a script sees an unrepaired mismatch in the exit status (1)
      throw new DstError('DST_ERR_MISMATCH', `node verify ${nodeName}: ${res.mismatches.length - res.repaired} mismatching region(s) left unrepaired; repair with --repair --from LEG`, { errno: 'EIO' });
    }
  },
});

// ---- resolve ----

const resolve = defineCommand<{ name: string; keep: string }>({
  command: 'resolve <name>',
  describe: describeOf('node-resolve', 'mirror in split brain: keep one leg; the others copy what differs from it'),
  builder: (y) => y.positional('name', name).options({
    keep: { type: 'string', demandOption: true, describe: 'the leg index whose data survives' },
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('node-resolve', { name: optName(argv.name), keep: optInt('--keep', argv.keep, 0, 31) });
    ctx.print(res, (n) => nodeLine(ctx.chalk, n));
  },
});

export const nodeSubcommands: readonly DstCommand[] = [add, start, stop, del, reconnect, list, show, set, verify, resolve, legCommand] as readonly DstCommand[];
export const nodeCommand: DstCommand = defineGroup('node', 'Manage nodes: add, start, stop, del, reconnect, list, show, set, verify, resolve, leg', nodeSubcommands);
