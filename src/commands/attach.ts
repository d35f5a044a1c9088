// `dst attach NAME [--method auto|nbd|fuse]` and `dst detach NAME [--force]` (DESIGN §10).
// attach prints only the device path (text) or the attachment object (--json).
// Both may run helpers (nbd-client, nbdfuse, losetup, umount), so they wait longer than the
// control client's default 30 s.
import type { AttachMethodArg, ControlApi, ControlCommand } from '../engine/types.js';
import { defineCommand, engineError, makeContext, usage, type CommandContext, type DstCommand } from './context.js';
import { optName } from './args.js';
import { describeOf } from './help.js';

/** attach: helpers come up within ~15 s each; detach may have to unmount (flushing) first. */
export const ATTACH_TIMEOUT_MS = 120_000;
export const DETACH_TIMEOUT_MS = 300_000;

const METHODS: readonly AttachMethodArg[] = ['auto', 'nbd', 'fuse'];

const name = { describe: 'remote node name', type: 'string' } as const;

async function longRequest<C extends ControlCommand>(ctx: CommandContext, cmd: C, args: ControlApi[C]['args'], timeoutMs: number): Promise<ControlApi[C]['result']> {
  let client;
  try {
    client = await ctx.runtime.connect(ctx.socket);
  } catch (err) {
    throw engineError(err);
  }
  try {
    return await client.request(cmd, args, { timeoutMs });
  } catch (err) {
    throw engineError(err);
  } finally {
    try { await client.close(); } catch { /* a broken connection closes anyway */ }
  }
}

/** --method: syntax only (exit 2 on anything else). */
export function optMethod(v: unknown): AttachMethodArg {
  const m = v === undefined || v === null ? 'auto' : String(v);
  if (!(METHODS as readonly string[]).includes(m)) throw usage(`--method must be auto, nbd or fuse, not ${JSON.stringify(m)}`);
  return m as AttachMethodArg;
}

export const attachCommand: DstCommand = defineCommand<{ name: string; method?: string }>({
  command: 'attach <name>',
  describe: describeOf('attach', 'attach a ready remote node as a local block device; prints the device'),
  builder: (y) => y.positional('name', name).options({
    method: {
      type: 'string', default: 'auto',
      describe: 'nbd: nbd-client + nbd.ko (/dev/nbdN); fuse: nbdfuse + losetup (/dev/loopN); auto: nbd if /dev/nbd0 exists, else fuse',
    },
  })
    .example('$0 attach vol', 'prints /dev/nbd0 or /dev/loop0')
    .example('mkfs.ext4 $(dst attach vol --method fuse)', ''),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const args = { name: optName(argv.name), method: optMethod(argv.method) };
    const res = await longRequest(ctx, 'attach', args, ATTACH_TIMEOUT_MS);
    ctx.print(res, (a) => a.device);
  },
}) as DstCommand;

export const detachCommand: DstCommand = defineCommand<{ name: string; force?: boolean }>({
  command: 'detach <name>',
  describe: describeOf('detach', 'remove the local block device of a remote node'),
  builder: (y) => y.positional('name', name).options({
    force: { type: 'boolean', default: false, describe: 'detach even if mounted: unmount first (lazily, umount -l, if busy)' },
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await longRequest(ctx, 'detach', { name: optName(argv.name), force: argv.force === true }, DETACH_TIMEOUT_MS);
    ctx.print(res, (r) => `detached ${r.name} (${r.device}, ${r.method})`);
  },
}) as DstCommand;
