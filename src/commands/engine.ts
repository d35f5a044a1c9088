// `dst engine`: run the engine in the foreground until SIGINT/SIGTERM (no daemonizing).
import { defaultConfigPath, defaultStateDir, checkSocketPath } from '../engine/paths.js';
import { DstError } from '../util/errors.js';
import { parseHostPort } from '../util/parse.js';
import { defineCommand, engineError, makeContext, usage, type DstCommand, type EngineOptions } from './context.js';

interface EngineOpts {
  stateDir?: string;
  config?: string | false;
  group?: string;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  logFormat: 'text' | 'json';
  autosave?: boolean;
  metricsListen?: string;
}

export function engineArgs(o: EngineOpts, socket: string, abs: (p: string) => string): EngineOptions {
  try {
    checkSocketPath(socket, '--socket');
  } catch (err) {
    throw usage((err as Error).message, { code: 'DST_ERR_INVALID', errno: (err as DstError).errno ?? null });
  }
  if (o.config === '') throw usage('--config needs a FILE (or use --no-config)');
  if (o.stateDir === '') throw usage('--state-dir needs a directory');
  if (o.group !== undefined && !/^(\d+|[A-Za-z_][A-Za-z0-9_.-]*\$?)$/.test(o.group)) {
    throw usage(`invalid group ${JSON.stringify(o.group)} for --group: expected a group name or a numeric GID`, { code: 'DST_ERR_INVALID' });
  }
  if (o.metricsListen !== undefined) {
    try {
      parseHostPort(o.metricsListen, '--metrics-listen');
    } catch (err) {
      throw usage((err as Error).message, { code: 'DST_ERR_USAGE', errno: 'EINVAL' });
    }
  }
  return {
    socket,
    stateDir: o.stateDir === undefined ? defaultStateDir() : abs(o.stateDir),
    // `--no-config` → null (load nothing); the default path may be missing (= empty config)
    config: o.config === false ? null : o.config === undefined ? defaultConfigPath() : abs(o.config),
    configRequired: typeof o.config === 'string',
    group: o.group ?? null,
    logLevel: o.logLevel ?? null,
    logFormat: o.logFormat,
    handleSignals: true,
    ...(o.autosave === undefined ? {} : { autosave: o.autosave }),
    ...(o.metricsListen === undefined ? {} : { metricsListen: o.metricsListen }),
  };
}

export const engineCommand: DstCommand = defineCommand<EngineOpts>({
  command: 'engine',
  describe: 'Run the engine in the foreground (control socket, nodes); stops on SIGINT/SIGTERM',
  builder: (y) => y.options({
    'state-dir': { type: 'string', describe: 'export identities, attachments (default /var/lib/dst or $XDG_STATE_HOME/dst)' },
    config: { type: 'string', describe: 'config file (default /etc/dst/dst.conf or $XDG_CONFIG_HOME/dst/dst.conf); --no-config loads nothing (and saves nothing)' },
    autosave: { type: 'boolean', describe: 'save every change to the config file before replying (default: the file\'s [engine] autosave, else on); --no-autosave: only dst config save writes it' },
    group: { type: 'string', describe: 'group NAME|GID that may use the control socket (0660)' },
    'log-level': { choices: ['error', 'warn', 'info', 'debug'] as const, describe: 'log level (default: the config\'s [engine] log-level, else info)' },
    'log-format': { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'log line format (stderr)' },
    'metrics-listen': { type: 'string', describe: 'serve Prometheus metrics at http://ADDR:PORT/metrics (default: the config\'s [engine] metrics-listen, else off)' },
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const opts = engineArgs(argv, ctx.socket, ctx.abs);
    let handle;
    try {
      handle = await ctx.runtime.runEngine(opts);
    } catch (err) {
      throw engineError(err);
    }
    try {
      await handle.closed;
    } catch (err) {
      throw engineError(err);
    }
  },
}) as DstCommand;
