// `dst node leg add|del`: replace a running mirror's legs (issue 15). The engine pauses the
// device, rewrites the legs' metadata and reassembles; the command returns once it serves again.
import { parseLegSpec } from '../util/parse.js';
import { defineCommand, defineGroup, makeContext, type DstCommand } from './context.js';
import { checked, optInt, optName } from './args.js';
import { describeOf } from './help.js';
import { nodeLine } from './render.js';

const name = { describe: 'node name (a mirror)', type: 'string' } as const;

const add = defineCommand<{ name: string; remote: string; 'force-init'?: boolean }>({
  command: 'add <name>',
  describe: describeOf('node-leg-add', 'append a leg to a running mirror (it compares and copies what differs in the background)'),
  builder: (y) => y.positional('name', name).options({
    remote: { type: 'string', demandOption: true, describe: 'HOST:PORT[/EXPORT] of the export that becomes the new leg' },
    'force-init': { type: 'boolean', default: false, describe: 'initialise an export that holds mirror metadata (its data is overwritten)' },
  }).example('$0 node leg add vol --remote 192.0.2.12:10825/c', ''),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const leg = checked('--remote', 'leg address', argv.remote, (x, what) => parseLegSpec(x, what, null));
    const res = await ctx.request('node-leg-add', {
      name: optName(argv.name), remote: leg.remote, export: leg.export, ...(argv['force-init'] === true ? { forceInit: true } : {}),
    });
    ctx.print(res, (n) => nodeLine(ctx.chalk, n));
  },
});

const del = defineCommand<{ name: string; leg: string; force?: boolean }>({
  command: 'del <name> <leg>',
  describe: describeOf('node-leg-del', 'remove a leg from a running mirror (the legs after it are renumbered)'),
  builder: (y) => y.positional('name', name).positional('leg', { describe: 'the leg index shown in node show', type: 'string' }).options({
    force: { type: 'boolean', default: false, describe: 'even the last in-sync leg (the first connected leg that stays is taken as it is)' },
  }).example('$0 node leg del vol 1', ''),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('node-leg-del', {
      name: optName(argv.name), leg: optInt('LEG', argv.leg, 0, 31), ...(argv.force === true ? { force: true } : {}),
    });
    ctx.print(res, (n) => nodeLine(ctx.chalk, n));
  },
});

export const legCommand: DstCommand = defineGroup('leg', 'Change a running mirror\'s legs: add, del', [add, del] as readonly DstCommand[]);
