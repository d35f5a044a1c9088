// `dst fault-proxy`: a TCP proxy with run-time switchable faults (test tool shipped as a feature),
// and `dst fault-proxy ctl SOCKET COMMAND...` to switch it. Never exits the process: the run handler
// resolves once the proxy is closed (SIGINT/SIGTERM); errors are thrown as DstError.
import { resolve as resolvePath } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { DstError } from '../util/errors.js';
import { createLogger, type Logger, type LogLevel } from '../util/log.js';
import { parseDuration, parseHostPort, parseSize } from '../util/parse.js';
import { ControlServer, CONTROL_COMMANDS, controlRequestRaw, DEFAULT_CTL_TIMEOUT_MS } from '../faultproxy/control.js';
import { DEFAULT_MAX_HELD_BYTES, FaultProxy } from '../faultproxy/proxy.js';

export interface FaultProxyRunOptions {
  listen: string;
  target: string;
  control?: string | null;
  capture?: string | null;
  maxHeldBytes?: number;
  logger?: Logger;
  /** where the first line ("listening ADDR") goes; default stdout */
  out?: (line: string) => void;
}

export interface RunningFaultProxy {
  proxy: FaultProxy;
  control: ControlServer | null;
  /** "listening ADDR" has been printed; this is ADDR */
  address: string;
  close(): Promise<void>;
}

/** Start a proxy (and its control socket) and print `listening ADDR`. */
export async function startFaultProxy(opts: FaultProxyRunOptions): Promise<RunningFaultProxy> {
  const logger = opts.logger ?? createLogger('info');
  // Syntax first (usage errors), before anything binds.
  parseHostPort(opts.listen, '--listen');
  parseHostPort(opts.target, '--target', false);
  const proxy = new FaultProxy({
    listen: opts.listen,
    target: opts.target,
    capture: opts.capture ?? null,
    maxHeldBytes: opts.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES,
    logger,
  });
  await proxy.start();
  let control: ControlServer | null = null;
  if (opts.control) {
    control = new ControlServer(proxy, opts.control, { logger });
    try {
      await control.start();
    } catch (err) {
      await proxy.close();
      throw err;
    }
  }
  const address = proxy.addressText;
  (opts.out ?? ((line: string) => process.stdout.write(line + '\n')))(`listening ${address}`);
  let closing: Promise<void> | null = null;
  return {
    proxy,
    control,
    address,
    close: () => (closing ??= (async () => {
      await control?.close();
      await proxy.close();
    })()),
  };
}

/** Run until `signal` aborts, then close everything. */
export async function runFaultProxy(opts: FaultProxyRunOptions & { signal: AbortSignal }): Promise<void> {
  const running = await startFaultProxy(opts);
  if (!opts.signal.aborted) {
    await new Promise<void>((resolve) => opts.signal.addEventListener('abort', () => resolve(), { once: true }));
  }
  await running.close();
}

interface RunArgs {
  listen?: string;
  target?: string;
  control?: string;
  capture?: string;
  'max-held'?: string;
  'log-level'?: string;
}

interface CtlArgs {
  socket: string;
  command: (string | number)[];
  timeout?: string;
}

const LEVELS: readonly string[] = ['error', 'warn', 'info', 'debug'];

/** CLI syntax errors are usage errors (exit 2), whatever the parser calls them. */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof DstError && err.code === 'DST_ERR_INVALID') throw new DstError('DST_ERR_USAGE', err.message, { cause: err });
    throw err;
  }
}

export const faultProxyCtlCommand: CommandModule<object, CtlArgs> = {
  command: 'ctl <socket> <command..>',
  describe: 'send one command to a running fault proxy; prints its JSON reply',
  builder: (y: Argv<object>) => y
    .positional('socket', { type: 'string', describe: 'the proxy\'s --control socket', demandOption: true })
    .positional('command', {
      type: 'string', array: true, demandOption: true,
      describe: `one of: ${CONTROL_COMMANDS.join(' | ')}`,
    })
    .option('timeout', { type: 'string', describe: 'how long to wait for the reply (default 5s)' }) as unknown as Argv<CtlArgs>,
  handler: async (argv) => {
    const words = (argv.command ?? []).map((w) => String(w));
    if (words.length === 0) throw new DstError('DST_ERR_USAGE', 'fault-proxy ctl: missing COMMAND');
    // The proxy may run elsewhere in the tree: FILE is relative to where ctl runs.
    if (words[0]!.toLowerCase() === 'inject' && words[1] !== undefined) words[1] = resolvePath(words[1]);
    const timeout = argv.timeout;
    const timeoutMs = timeout !== undefined ? asUsage(() => parseDuration(timeout, '--timeout')) : DEFAULT_CTL_TIMEOUT_MS;
    const reply = await controlRequestRaw(String(argv.socket), words, { timeoutMs });
    process.stdout.write(reply + '\n');
  },
};

export const faultProxyCommand: CommandModule<object, RunArgs> = {
  command: 'fault-proxy',
  describe: 'TCP proxy with run-time switchable faults (pass, delay, stall, cut, corrupt, refuse, inject)',
  builder: (y: Argv<object>) => y
    .command(faultProxyCtlCommand)
    .option('listen', { type: 'string', global: false, describe: 'ADDR:PORT to listen on (port 0 = any free port)' })
    .option('target', { type: 'string', global: false, describe: 'ADDR:PORT to forward every connection to' })
    .option('control', { type: 'string', global: false, describe: 'unix socket for `dst fault-proxy ctl`' })
    .option('capture', { type: 'string', global: false, describe: 'record both directions to FILE' })
    .option('max-held', { type: 'string', global: false, describe: 'bytes held per connection and direction before reading pauses (default 64M)' })
    .option('log-level', { type: 'string', global: false, choices: LEVELS, describe: 'stderr log level (default info)' })
    .epilogue('Prints "listening ADDR:PORT" as its first stdout line, then runs until SIGINT/SIGTERM.\n'
      + `Control commands: ${CONTROL_COMMANDS.join(' | ')}`) as unknown as Argv<RunArgs>,
  handler: async (argv) => {
    if (!argv.listen) throw new DstError('DST_ERR_USAGE', 'fault-proxy: --listen ADDR:PORT is required');
    if (!argv.target) throw new DstError('DST_ERR_USAGE', 'fault-proxy: --target ADDR:PORT is required');
    const level = argv['log-level'];
    const logger = createLogger(level !== undefined && LEVELS.includes(level) ? level as LogLevel : 'info');
    const { listen, target } = argv;
    asUsage(() => parseHostPort(listen, '--listen'));
    asUsage(() => parseHostPort(target, '--target', false));
    const maxHeld = argv['max-held'];
    const maxHeldBytes = maxHeld !== undefined ? asUsage(() => parseSize(maxHeld, '--max-held')) : DEFAULT_MAX_HELD_BYTES;
    if (maxHeldBytes < 1) throw new DstError('DST_ERR_USAGE', 'fault-proxy: --max-held must be at least 1 byte');
    const ac = new AbortController();
    const onSignal = (): void => ac.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      await runFaultProxy({
        listen,
        target,
        control: argv.control ?? null,
        capture: argv.capture ?? null,
        maxHeldBytes,
        logger,
        signal: ac.signal,
      });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
