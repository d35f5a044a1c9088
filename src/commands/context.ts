// What a command handler gets: the output seam (Io), the control client (one request per
// command), rendering helpers, and the error tagging that src/cli.ts turns into exit codes.
// Nothing here exits or sets process.exitCode; src/cli.ts is the only place that does.
import { isAbsolute, resolve } from 'node:path';
import { Chalk, type ChalkInstance } from 'chalk';
import type { Argv, CommandModule } from 'yargs';
import { DstError, type DstErrorCode } from '../util/errors.js';
import { MAX_SOCKET_PATH } from '../engine/paths.js';
import type { ControlApi, ControlCommand, EventRecord } from '../engine/types.js';

/** Where a command writes. `out` is stdout, `err` is stderr; text is written as given. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** stdout is a terminal (chalk colours only then, and never with --json) */
  isTTY: boolean;
}

/** The part of src/netlink/client.ts's ControlClient the CLI uses. */
export interface ControlClientLike {
  request<C extends ControlCommand>(cmd: C, args: ControlApi[C]['args'], opts?: { timeoutMs?: number }): Promise<ControlApi[C]['result']>;
  subscribe(node: string | null, onEvent: (ev: EventRecord) => void): Promise<{ closed: Promise<void>; close(): void }>;
  close(): void | Promise<void>;
}

/** Opens a control connection (version hello included). Failure → DstError DST_ERR_NO_ENGINE. */
export type Connector = (socketPath: string) => Promise<ControlClientLike>;

export interface EngineOptions {
  socket: string;
  stateDir: string;
  config: string | null;
  /** --config FILE given: a missing file is an error (the default file may be missing) */
  configRequired: boolean;
  group: string | null;
  /** null: the config's [engine] log-level, else info */
  logLevel: 'error' | 'warn' | 'info' | 'debug' | null;
  logFormat: 'text' | 'json';
  handleSignals: boolean;
  /** --[no-]autosave given (false: changes saved only by config save); absent: the config's [engine] autosave, else on */
  autosave?: boolean;
}
export type EngineRunner = (opts: EngineOptions) => Promise<{ closed: Promise<void>; shutdown(): Promise<void> }>;

/** Everything main() injects; handed to handlers through the yargs parse context. */
export interface Runtime {
  io: Io;
  connect: Connector;
  runEngine: EngineRunner;
  env: NodeJS.ProcessEnv;
  cwd: string;
  version: string;
  /** aborted on SIGINT/SIGTERM (or when stdout goes away): ends `dst events` */
  interrupt: AbortSignal;
  /** the socket path when --socket was not given ($DST_SOCKET, else the default) */
  defaultSocket(): string;
}

export const RUNTIME_KEY = '__dstRuntime' as const;

/** Options every command sees (declared in src/cli.ts) plus the injected runtime. */
export interface GlobalArgs {
  socket?: string;
  json?: boolean;
  [RUNTIME_KEY]: Runtime;
}

// ---- error tagging: where an error came from decides the exit code ----

const fromEngine = new WeakSet<object>();
const fromInput = new WeakSet<object>();

/** The engine (a control reply, or runEngine) refused: exit 1 (3 for DST_ERR_NO_ENGINE). */
export function engineError<E>(err: E): E {
  if (typeof err === 'object' && err !== null) fromEngine.add(err);
  return err;
}
export function isEngineError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && fromEngine.has(err);
}

/** Bad input caught by the CLI itself (syntax, unreadable local file): exit 2. */
export function inputError<E>(err: E): E {
  if (typeof err === 'object' && err !== null) fromInput.add(err);
  return err;
}
export function isInputError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && fromInput.has(err);
}

/** A DstError with an optional hint line, tagged as CLI-side input error. */
export function usage(message: string, opts: { code?: DstErrorCode; errno?: string | null; hint?: string; cause?: unknown } = {}): DstError {
  const err = new DstError(opts.code ?? 'DST_ERR_USAGE', message, { errno: opts.errno ?? null, cause: opts.cause });
  if (opts.hint) (err as DstError & { hint?: string }).hint = opts.hint;
  return inputError(err);
}

export function hintOf(err: unknown): string | null {
  const h = (err as { hint?: unknown } | null)?.hint;
  return typeof h === 'string' && h ? h : null;
}

// ---- the context handlers use ----

export interface CommandContext {
  io: Io;
  json: boolean;
  chalk: ChalkInstance;
  socket: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  runtime: Runtime;
  /** connect, one request, close. Errors are tagged as the engine's. */
  request<C extends ControlCommand>(cmd: C, args: ControlApi[C]['args']): Promise<ControlApi[C]['result']>;
  /** several requests on one connection (the one-shot form) */
  session<T>(fn: (request: CommandContext['request']) => Promise<T>): Promise<T>;
  /** print a result: JSON document with --json, else the text from render() */
  print<T>(result: T, render: (r: T) => string): void;
  warn(message: string): void;
  /** absolute path, resolved against the CLI's cwd */
  abs(path: string): string;
}

export function makeContext(argv: { socket?: string | undefined; json?: boolean | undefined; [RUNTIME_KEY]: Runtime }): CommandContext {
  const runtime = argv[RUNTIME_KEY];
  const json = argv.json === true;
  const { io } = runtime;
  const env = runtime.env;
  const noColor = (env.NO_COLOR !== undefined && env.NO_COLOR !== '') || env.FORCE_COLOR === '0' || env.TERM === 'dumb';
  const chalk = new Chalk({ level: io.isTTY && !json && !noColor ? Math.max(defaultChalkLevel(), 1) as 1 | 2 | 3 : 0 });
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(runtime.cwd, p));
  if (argv.socket === '') throw usage('--socket needs a PATH');
  const socket = argv.socket !== undefined ? abs(argv.socket) : runtime.defaultSocket();
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
    throw usage(`socket path ${socket} is ${Buffer.byteLength(socket)} bytes; unix sockets allow at most ${MAX_SOCKET_PATH}`,
      { code: 'DST_ERR_INVALID', errno: 'ENAMETOOLONG' });
  }

  async function withClient<T>(fn: (c: ControlClientLike) => Promise<T>): Promise<T> {
    let client: ControlClientLike;
    try {
      client = await runtime.connect(socket);
    } catch (err) {
      throw engineError(err);
    }
    try {
      return await fn(client);
    } catch (err) {
      throw engineError(err);
    } finally {
      try { await client.close(); } catch { /* closing a broken connection is not news */ }
    }
  }
  const request = <C extends ControlCommand>(cmd: C, args: ControlApi[C]['args']): Promise<ControlApi[C]['result']> =>
    withClient((c) => c.request(cmd, args, requestOptions(cmd, args)));

  return {
    io, json, chalk, socket, cwd: runtime.cwd, env: runtime.env, runtime, request, abs,
    session: (fn) => withClient((c) => fn((cmd, args) => c.request(cmd, args, requestOptions(cmd, args)))),
    print(result, render) {
      if (json) io.out(JSON.stringify(result, null, 2) + '\n');
      else {
        const text = render(result);
        if (text) io.out(text.endsWith('\n') ? text : text + '\n');
      }
    },
    warn(message) {
      if (json) io.err(JSON.stringify({ warning: { message } }) + '\n');
      else io.err(`dst: warning: ${message}\n`);
    },
  };
}

/** The control client's default request timeout (30 s) is too short for a long `--wait`. */
const REQUEST_TIMEOUT_MS = 30_000;
/** How long `node verify` waits for its pass. */
const VERIFY_WAIT_MS = 24 * 3600 * 1000;

function requestOptions<C extends ControlCommand>(cmd: C, args: ControlApi[C]['args']): { timeoutMs?: number } {
  if (cmd === 'node-start') return { timeoutMs: (args as ControlApi['node-start']['args']).waitMs + REQUEST_TIMEOUT_MS };
  // a verify pass reads the whole device on every leg: wait for it (it goes on in the engine after)
  if (cmd === 'node-verify') return { timeoutMs: VERIFY_WAIT_MS };
  return {};
}

let chalkLevelCache: number | null = null;
function defaultChalkLevel(): number {
  if (chalkLevelCache === null) chalkLevelCache = new Chalk().level;
  return chalkLevelCache;
}

// ---- command module shape ----

/** The handler's argv: the command's own (camelCase) options plus the globals. */
export type HandlerArgs<A> = A & GlobalArgs & { _: (string | number)[]; $0: string };

/**
 * One typed command module. yargs' inferred builder types do not compose with a declared
 * argument interface, so the one cast from the builder's inferred type lives here.
 */
export function defineCommand<A>(m: {
  command: string | readonly string[];
  describe: string | false;
  aliases?: readonly string[];
  builder?: (y: Argv<GlobalArgs>) => Argv<unknown>;
  handler: (argv: HandlerArgs<A>) => Promise<void>;
}): CommandModule<GlobalArgs, A> {
  return {
    command: m.command,
    describe: m.describe,
    ...(m.aliases ? { aliases: m.aliases } : {}),
    builder: (m.builder ?? ((y: Argv<GlobalArgs>) => y)) as unknown as CommandModule<GlobalArgs, A>['builder'],
    handler: m.handler as unknown as CommandModule<GlobalArgs, A>['handler'],
  };
}

/** Any command module of this CLI, as registered in src/commands/index.ts. */
export type DstCommand = CommandModule<GlobalArgs, unknown>;

const groups = new WeakMap<object, readonly DstCommand[]>();

/** The subcommands of a group made by defineGroup (empty for a leaf command). */
export function subcommandsOf(c: DstCommand): readonly DstCommand[] {
  return groups.get(c) ?? [];
}

/** The first word of a command module's `command` ("add <name>" → "add"). */
export function commandWord(c: DstCommand): string {
  const cmd: unknown = Array.isArray(c.command) ? (c.command as unknown[])[0] : c.command;
  return String(cmd ?? '').split(' ')[0]!;
}

/** A command group (`node`, `security`, ...): subcommands, at least one required. */
export function defineGroup(name: string, describe: string, subcommands: readonly DstCommand[]): DstCommand {
  const group = defineCommand<unknown>({
    command: name,
    describe,
    builder: (y) => {
      let g = y.usage(`$0 ${name} <command>\n\n${describe}`) as Argv<GlobalArgs>;
      for (const c of subcommands) g = g.command(c as CommandModule<GlobalArgs, unknown>) as Argv<GlobalArgs>;
      return g.demandCommand(1, `give a subcommand: ${subcommands.map(commandWord).join(', ')}`);
    },
    handler: async () => { /* yargs runs the subcommand */ },
  }) as DstCommand;
  groups.set(group, subcommands);
  return group;
}
