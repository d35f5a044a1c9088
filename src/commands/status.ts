// `dst status`: the engine's version, pid, paths, limits and nodes.
import { defineCommand, makeContext, type DstCommand } from './context.js';
import { statusText } from './render.js';
import { describeOf } from './help.js';

export const statusCommand: DstCommand = defineCommand<Record<string, never>>({
  command: 'status',
  describe: describeOf('status', 'show the engine: version, pid, uptime, paths, limits, nodes'),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('status', {});
    ctx.print(res, (s) => statusText(ctx.chalk, s));
  },
}) as DstCommand;
