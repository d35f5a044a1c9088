// `dst demo` (what `npm start` runs): one engine in the foreground with a ready-made export node
// "demo" and remote node "vol" under /tmp/dst-demo-<uid>/ (src/demo.ts); stops on SIGINT/SIGTERM.
import { defineCommand, engineError, makeContext, type DstCommand } from './context.js';

export const demoCommand: DstCommand = defineCommand<Record<string, never>>({
  command: 'demo',
  describe: 'Run one engine in the foreground with a ready-made export node "demo" and remote node "vol" (npm start)',
  handler: async (argv) => {
    const ctx = makeContext(argv);
    let engine;
    try {
      const { runDemo } = await import('../demo.js');
      engine = await runDemo({ print: (t) => ctx.io.out(t) });
    } catch (err) {
      throw engineError(err);
    }
    await engine.closed;
  },
}) as DstCommand;
