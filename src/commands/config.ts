// `dst config show|save|load`: the engine's INI config (DESIGN §12). The engine reads and
// writes the files; the CLI makes their paths absolute.
import { defineCommand, defineGroup, makeContext, type DstCommand } from './context.js';
import { describeOf } from './help.js';

const show = defineCommand<Record<string, never>>({
  command: 'show',
  describe: describeOf('config-show', 'print the running configuration as INI'),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('config-show', {});
    ctx.print(res, (r) => r.text);
  },
});

const save = defineCommand<{ file?: string; force?: boolean }>({
  command: 'save [file]',
  describe: describeOf('config-save', 'write the running configuration (default: the engine\'s config file)'),
  builder: (y) => y.positional('file', { type: 'string', describe: 'file to write' }).option('force', {
    type: 'boolean', describe: 'overwrite the engine\'s config file even when it was changed behind the engine\'s back (the running state wins)',
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('config-save', {
      file: argv.file === undefined ? null : ctx.abs(argv.file), ...(argv.force === true ? { force: true } : {}),
    });
    ctx.print(res, (r) => `saved ${r.file}`);
  },
});

const load = defineCommand<{ file: string }>({
  command: 'load <file>',
  describe: describeOf('config-load', 'add the nodes of a config file; all or nothing, refuses names that exist'),
  builder: (y) => y.positional('file', { type: 'string', describe: 'INI file' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('config-load', { file: ctx.abs(argv.file) });
    ctx.print(res, (r) => r.nodes.length ? `loaded ${r.nodes.length} node${r.nodes.length === 1 ? '' : 's'}: ${r.nodes.join(', ')}` : 'loaded no nodes');
  },
});

export const configSubcommands: readonly DstCommand[] = [show, save, load] as readonly DstCommand[];
export const configCommand: DstCommand = defineGroup('config', 'The engine\'s configuration file: show, save, load', configSubcommands);
