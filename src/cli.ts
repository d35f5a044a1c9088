// The `dst` command line: yargs built from src/commands/index.ts, plus the original utility's
// one-shot form (`dst -n NAME ...`). This is the only place that decides exit codes:
//   0 ok, 1 refused by the engine, 2 usage (CLI-side syntax), 3 no engine reachable.
// main() returns the code; bin/dst sets process.exitCode from it. Nothing here calls process.exit.
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import yargs, { type Argv } from 'yargs';
import { DstError } from './util/errors.js';
import { defaultSocketPath } from './engine/paths.js';
import { commands } from './commands/index.js';
import {
  RUNTIME_KEY, commandWord, hintOf, isEngineError, isInputError, makeContext, subcommandsOf, usage,
  type Connector, type DstCommand, type EngineRunner, type Io, type Runtime,
} from './commands/context.js';
import { ONESHOT_USAGE, isOneShot, parseOneShotArgv, planOneShot, runOneShot } from './commands/oneshot.js';

export type { Io, Connector, EngineRunner, ControlClientLike } from './commands/context.js';

export interface MainOptions {
  /** stdout/stderr seam (default: the process's) */
  io?: Io;
  /** opens a control connection (default: src/netlink/client.ts connectControl) */
  connect?: Connector;
  /** runs the engine for `dst engine` (default: src/engine/engine.ts runEngine) */
  runEngine?: EngineRunner;
  /** environment for $DST_SOCKET (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** relative paths are made absolute against this (default process.cwd()) */
  cwd?: string;
  /** ends `dst events` (default: SIGINT/SIGTERM, or stdout going away) */
  signal?: AbortSignal;
}

let versionCache: string | null = null;
/** The package version (package.json next to dist/). */
export function packageVersion(): string {
  if (versionCache === null) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      versionCache = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
    } catch {
      versionCache = '0.0.0';
    }
  }
  return versionCache;
}

/** Exit code for a thrown value (DESIGN §3). */
export function exitCodeFor(err: unknown): number {
  if (isInputError(err)) return 2;
  if (err instanceof DstError && err.code === 'DST_ERR_NO_ENGINE') return 3;
  if (isEngineError(err)) return 1;
  if (err instanceof DstError && (err.code === 'DST_ERR_USAGE')) return 2;
  return 1;
}

function reportError(io: Io, json: boolean, err: unknown): number {
  const code = exitCodeFor(err);
  const dst = err instanceof DstError ? err : null;
  const message = dst ? dst.message : `internal error: ${err instanceof Error ? err.message : String(err)}`;
  if (json) {
    io.err(JSON.stringify({ error: { code: dst?.code ?? 'DST_ERR_INTERNAL', errno: dst?.errno ?? null, message } }) + '\n');
  } else {
    io.err(`dst: ${message}\n`);
    const hint = hintOf(err);
    if (hint) io.err(`${hint}\n`);
    if (!dst && err instanceof Error && err.stack) io.err(`${err.stack}\n`);
  }
  return code;
}

/** Is --json on the command line (before `--`)? Errors raised before parsing need to know. */
function wantsJson(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--json' || a === '--json=true') return true;
  }
  return false;
}

/** The command words on the line ("node show"), and the innermost command module found. */
function commandPath(argv: readonly string[]): { words: string[]; leaf: DstCommand | null } {
  let level: readonly DstCommand[] = commands;
  const words: string[] = [];
  let leaf: DstCommand | null = null;
  for (const a of argv) {
    if (a === '--') break;
    if (a.startsWith('-')) continue;
    const c = level.find((m) => commandWord(m) === a || (Array.isArray(m.aliases) ? m.aliases.includes(a) : m.aliases === a));
    if (!c) break;
    words.push(commandWord(c));
    leaf = c;
    level = subcommandsOf(c);
    if (level.length === 0) break;
  }
  return { words, leaf };
}

/** An option that is not repeatable but was given more than once: say which, instead of guessing. */
function refuseRepeats(args: Record<string, unknown>, repeatable: readonly string[]): void {
  const allowed = new Set(['_', ...repeatable]);
  const repeated = Object.keys(args).filter((k) => Array.isArray(args[k]) && !allowed.has(k) && !/[A-Z]/.test(k));
  if (repeated.length) throw new YargsRepeat(`${repeated.map((k) => `--${k}`).join(', ')} given more than once`);
}

/** yargs' own record of the options declared so far (the running command's included); its typings omit it. */
interface YargsInternals { getOptions(): { array: string[] } }

/** Thrown from middleware; yargs hands it to fail(), which turns it into a usage error. */
class YargsRepeat extends Error {
  override name = 'YError';
}

/** yargs' message, said about the command it concerns and naming what is missing or unknown. */
function usageError(msg: string, argv: readonly string[]): DstError {
  const { words, leaf } = commandPath(argv);
  const prefix = words.length ? `${words.join(' ')}: ` : '';
  const hint = `run: dst ${words.length ? words.join(' ') + ' ' : ''}--help`;
  const list = (text: string): string[] => text.split(/,\s*/).filter(Boolean);
  let m = /^Not enough non-option arguments: got (\d+), need at least (\d+)$/.exec(msg);
  if (m && leaf) {
    const spec = String(Array.isArray(leaf.command) ? leaf.command[0] : leaf.command).split(' ').slice(1).filter((t) => t.startsWith('<'));
    const missing = spec.slice(Number(m[1])).map((t) => t.slice(1, -1).toUpperCase());
    if (missing.length) return usage(`${prefix}missing ${missing.join(' ')}`, { hint });
  }
  m = /^Missing required arguments?: (.+)$/.exec(msg);
  if (m) {
    const names = list(m[1]!).map((n) => `--${n}`);
    return usage(`${prefix}missing required option${names.length > 1 ? 's' : ''} ${names.join(', ')}`, { hint });
  }
  m = /^Unknown arguments?: (.+)$/.exec(msg);
  if (m) {
    const names = list(m[1]!).map((n) => (argv.some((a) => a === `--${n}` || a.startsWith(`--${n}=`)) ? `--${n}`
      : n.length === 1 && argv.some((a) => /^-[^-]/.test(a) && a.includes(n)) ? `-${n}` : JSON.stringify(n)));
    return usage(`${prefix}unknown ${names.some((n) => n.startsWith('-')) ? 'option' : 'argument'}${names.length > 1 ? 's' : ''} ${names.join(', ')}`, { hint });
  }
  const invalid = [...msg.matchAll(/Argument: (\S+), Given: (".*?"|\S+), Choices: (.+)/g)];
  if (invalid.length) {
    return usage(prefix + invalid.map(([, opt, given, choices]) =>
      `invalid value ${given} for --${opt}: expected ${choices!.replace(/"/g, '').split(/,\s*/).join(', ')}`).join('; '), { hint });
  }
  if (msg === 'give a command') msg = `give a command: ${commands.map(commandWord).join(', ')}`;
  return usage(prefix + msg.charAt(0).toLowerCase() + msg.slice(1), { hint });
}

let epipeGuard = false;
function processIo(): Io {
  if (!epipeGuard) {
    // `dst node list | head -1`: a reader that goes away is not a crash
    epipeGuard = true;
    process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code !== 'EPIPE') throw err; });
  }
  return {
    out: (text) => { process.stdout.write(text); },
    err: (text) => { process.stderr.write(text); },
    isTTY: process.stdout.isTTY === true,
  };
}

/** SIGINT/SIGTERM/EPIPE on stdout → abort; installed only when a command asks (dst events). */
function lazyInterrupt(cleanups: (() => void)[]): () => AbortSignal {
  let ctl: AbortController | null = null;
  return () => {
    if (ctl) return ctl.signal;
    const c = new AbortController();
    ctl = c;
    const onSignal = (): void => c.abort();
    const onStdoutError = (err: NodeJS.ErrnoException): void => { if (err.code === 'EPIPE') c.abort(); };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.stdout.on('error', onStdoutError);
    cleanups.push(() => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.stdout.off('error', onStdoutError);
    });
    return c.signal;
  };
}

/** connect + version hello (a mismatch → DST_ERR_VERSION naming both versions). */
const defaultConnector: Connector = async (socketPath) => {
  const m = await import('./netlink/client.js');
  const client = await m.connectControl(socketPath);
  try {
    await m.helloCheck(client, m.clientVersion());
  } catch (err) {
    client.close();
    throw err;
  }
  return client;
};

const defaultRunEngine: EngineRunner = async (opts) => {
  const m = await import('./engine/engine.js');
  return m.runEngine(opts);
};

/** Run the CLI with argv (without node and script). Returns the exit code; never exits. */
export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  const io = options.io ?? processIo();
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const json = wantsJson(argv);
  const cleanups: (() => void)[] = [];
  const interruptOf = options.signal ? () => options.signal! : lazyInterrupt(cleanups);
  const runtime: Runtime = {
    io,
    connect: options.connect ?? defaultConnector,
    runEngine: options.runEngine ?? defaultRunEngine,
    env,
    cwd,
    version: packageVersion(),
    get interrupt() { return interruptOf(); },
    defaultSocket: () => {
      const fromEnv = env.DST_SOCKET;
      if (fromEnv) return isAbsolute(fromEnv) ? fromEnv : resolve(cwd, fromEnv);
      return defaultSocketPath();
    },
  };
  try {
    if (isOneShot(argv)) {
      const parsed = parseOneShotArgv(argv);
      if (parsed.opts.has('h')) {
        io.out(ONESHOT_USAGE);
        return 0;
      }
      const ctx = makeContext({ socket: parsed.socket, json: parsed.json, [RUNTIME_KEY]: runtime });
      const plan = await planOneShot(parsed.opts, ctx.abs);
      await runOneShot(ctx, plan);
      return 0;
    }
    let output = '';
    const parser: Argv = yargs()
      // usageError() rewrites yargs' English messages, and the bundled CLI has no locale files
      .locale('en')
      .scriptName('dst')
      .usage('$0 <command> [options]\n\nTurn storage on remote machines into local block devices.')
      .parserConfiguration({
        'parse-numbers': false,
        'parse-positional-numbers': false,
        // repeatable options (--remote, one per leg) collect every value; any other option
        // given twice is refused below rather than silently keeping the last one
        'duplicate-arguments-array': true,
      })
      .middleware((args) => refuseRepeats(args, (parser as unknown as YargsInternals).getOptions().array), true)
      .option('socket', {
        type: 'string', global: true,
        describe: 'control socket (default $DST_SOCKET, else /run/dst/dst.sock or $XDG_RUNTIME_DIR/dst/dst.sock)',
      })
      .option('json', { type: 'boolean', global: true, describe: 'results on stdout as one JSON document; errors as JSON on stderr' })
      .command(commands as never)
      .demandCommand(1, 'give a command')
      .recommendCommands()
      .strict()
      .completion('completion', 'Print a shell completion script (bash, zsh): dst completion >> ~/.bashrc')
      .version(runtime.version)
      .help()
      .alias('help', 'h')
      .alias('version', 'V')
      .epilogue('The original utility\'s one-shot form also works: dst -n NAME -d DISK -a ADDR -p PORT [-s FILE] [-R]; see dst -n x -h.\n' +
        'Exit codes: 0 ok, 1 refused by the engine, 2 usage, 3 no engine reachable.')
      .wrap(Math.min(100, io.isTTY && process.stdout.columns ? process.stdout.columns : 80))
      .exitProcess(false)
      .fail((msg, err) => {
        if (err) throw err;
        throw usageError(msg ?? 'invalid command line', argv);
      });
    await parser.parseAsync(argv, { [RUNTIME_KEY]: runtime }, (_err, _argv, out) => { output = out; });
    if (output) io.out(output.endsWith('\n') ? output : output + '\n');
    return 0;
  } catch (err) {
    return reportError(io, json, usageFromYargs(err, argv));
  } finally {
    for (const c of cleanups) c();
  }
}

/** Errors yargs raises itself (YError) are usage errors. */
function usageFromYargs(err: unknown, argv: readonly string[]): unknown {
  if (err instanceof Error && err.name === 'YError') return usageError(err.message, argv);
  return err;
}
