// `dst events [--node NAME]`: follow the engine's event stream until interrupted or the engine
// goes away. Text: one line per event; --json: one JSON object per line, `subscribed` first.
import { DstError } from '../util/errors.js';
import type { EventRecord } from '../engine/types.js';
import { defineCommand, engineError, makeContext, type DstCommand } from './context.js';
import { optName } from './args.js';
import { eventLine } from './render.js';
import { describeOf } from './help.js';

export const eventsCommand: DstCommand = defineCommand<{ node?: string }>({
  command: 'events',
  describe: describeOf('subscribe', 'follow events (state changes, reconnects, failed transactions, ACL denials) until interrupted'),
  builder: (y) => y.options({
    node: { type: 'string', describe: 'only this node\'s events' },
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const node = argv.node === undefined ? null : optName(argv.node);
    const { interrupt } = ctx.runtime;
    if (interrupt.aborted) return;
    const onEvent = (ev: EventRecord): void => {
      ctx.io.out((ctx.json ? JSON.stringify(ev) : eventLine(ctx.chalk, ev)) + '\n');
    };
    let client;
    try {
      client = await ctx.runtime.connect(ctx.socket);
    } catch (err) {
      throw engineError(err);
    }
    let interrupted = false;
    try {
      const sub = await client.subscribe(node, onEvent);
      const onAbort = (): void => { interrupted = true; sub.close(); };
      interrupt.addEventListener('abort', onAbort, { once: true });
      if (interrupt.aborted) onAbort();
      try {
        await sub.closed;
      } finally {
        interrupt.removeEventListener('abort', onAbort);
      }
    } catch (err) {
      if (!interrupted) throw engineError(err);
    } finally {
      try { await client.close(); } catch { /* already gone */ }
    }
    if (!interrupted) {
      throw engineError(new DstError('DST_ERR_NO_ENGINE', `the engine at ${ctx.socket} closed the event stream (engine stopped?)`, { errno: 'ECONNRESET' }));
    }
  },
}) as DstCommand;
