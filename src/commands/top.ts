// `dst top`: a live view of every node and leg, refreshed every second over the control socket
// (`node list`, the answer `node show` gives; one connection for the whole run). On a terminal the
// screen is redrawn in place and `q` quits (stdin in raw mode, restored on the way out); otherwise
// each refresh is printed as plain text until interrupted. `--once` prints one refresh (two
// answers an interval apart: rates need two) and exits; with --json, as one document.
import type { NodeShow } from '../engine/types.js';
import { optDuration } from './args.js';
import { defineCommand, makeContext, type DstCommand } from './context.js';
import { topLines, topView, type TopView } from './top-model.js';

interface TopOpts {
  once?: boolean;
  interval?: string;
}

const CLEAR = '\x1b[H\x1b[2J';
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';

/** Resolves after ms, or at once when `stop` fires (q, interrupt). */
function pause(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (stop.aborted) return resolve();
    const done = (): void => { clearTimeout(timer); stop.removeEventListener('abort', done); resolve(); };
    const timer = setTimeout(done, ms);
    stop.addEventListener('abort', done, { once: true });
  });
}

/** `q` or Ctrl-C on a terminal stdin ends the view; returns the undo. */
function watchKeys(quit: () => void): () => void {
  const stdin = process.stdin;
  if (!stdin.isTTY) return () => undefined;
  stdin.setRawMode(true);
  const onData = (b: Buffer): void => { if (b.includes(0x71) || b.includes(0x51) || b.includes(0x03)) quit(); }; // q, Q, Ctrl-C
  stdin.on('data', onData);
  stdin.resume();
  return () => {
    stdin.off('data', onData);
    stdin.setRawMode(false);
    stdin.pause();
  };
}

export const topCommand: DstCommand = defineCommand<TopOpts>({
  command: 'top',
  describe: 'Live view of every node and leg: state, IOPS, MiB/s, latency, in flight, resends, resync; q quits',
  builder: (y) => y.options({
    once: { type: 'boolean', describe: 'print one refresh and exit (with --json: one JSON document)' },
    interval: { type: 'string', describe: 'time between refreshes (default 1s)' },
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const intervalMs = argv.interval === undefined ? 1000 : Math.max(100, optDuration('--interval', argv.interval));
    const stop = new AbortController();
    const onInterrupt = (): void => stop.abort();
    ctx.runtime.interrupt.addEventListener('abort', onInterrupt, { once: true });
    const live = ctx.io.isTTY && !ctx.json && argv.once !== true;
    const undoKeys = live ? watchKeys(() => stop.abort()) : () => undefined;
    if (live) ctx.io.out(HIDE_CURSOR);
    const show = (v: TopView): void => {
      if (ctx.json) { ctx.io.out(JSON.stringify(v, null, argv.once ? 2 : undefined) + '\n'); return; }
      const width = process.stdout.columns || Number(ctx.env.COLUMNS) || 120;
      const head = `dst top: ${v.nodes.length} nodes, every ${intervalMs / 1000}s, ${new Date().toLocaleTimeString()}${live ? ' (q quits)' : ''}`;
      ctx.io.out((live ? CLEAR : '') + [head.slice(0, width), ...topLines(v, width)].join('\n') + '\n' + (live ? '' : '\n'));
    };
    try {
      await ctx.session(async (request) => {
        let prev: NodeShow[] = await request('node-list', {});
        let at = performance.now();
        while (!stop.signal.aborted) {
          await pause(intervalMs, stop.signal);
          if (stop.signal.aborted && argv.once !== true) break;
          const cur = await request('node-list', {});
          const now = performance.now();
          show(topView(prev, cur, now - at));
          if (argv.once) break;
          prev = cur;
          at = now;
        }
      });
    } finally {
      ctx.runtime.interrupt.removeEventListener('abort', onInterrupt);
      undoKeys();
      if (live) ctx.io.out(SHOW_CURSOR + '\n');
    }
  },
}) as DstCommand;
