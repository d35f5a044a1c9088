// A real dst engine as a child process, with its own runtime and state dirs, for integration,
// fault and e2e tests. Everything is bounded by timeouts; kill + cleanup are registered with
// t.after (or the file's `after` when no test context is given).
//
//   const a = await startEngine(t);
//   await a.dstJson(['node', 'add', 'vol', '--disk', img, '--listen', '127.0.0.1:0']);
//   const show = await a.waitForState('vol', 'listening');
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import type { EventRecord, NodeShow, NodeState, StatusShow } from '../../src/engine/types.js';
import { onCleanup, removeTmp } from './tmp.js';
import { describeFailure, dstBin, mergeEnv, run, sleep, type RunOptions, type RunResult } from './tools.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface StartEngineOptions {
  /** use this directory (must exist, short path under /tmp) instead of a fresh one; it is not removed */
  dir?: string;
  /** config file: `--config FILE`; default (undefined/null) `--no-config` */
  config?: string | null;
  /** run with `--config <dir>/dst.conf`, created empty when missing: every change is autosaved to it */
  ownConfig?: boolean;
  /** extra engine arguments, e.g. ['--group', '0'] */
  args?: string[];
  /** environment additions for the engine (undefined removes a variable) */
  env?: Record<string, string | undefined>;
  /** default 'debug' */
  logLevel?: LogLevel;
  /** ms to wait for the control socket to accept connections; default 20 000 */
  readyTimeoutMs?: number;
  /** also require `dst status --json` to succeed before returning; default false */
  waitStatus?: boolean;
  /** label used in error messages (default: the dir) */
  name?: string;
}

/** A CLI failure, with what the engine said. */
export class DstCliError extends Error {
  constructor(
    message: string,
    readonly result: RunResult,
    /** the parsed `{"error":{code, errno, message}}` from stderr in --json mode, else null */
    readonly error: { code: string; errno: string | null; message: string } | null,
  ) {
    super(message);
    this.name = 'DstCliError';
  }

  get exitCode(): number {
    return this.result.code;
  }
}

export interface EventStream {
  /** every record received so far, `subscribed` first */
  readonly records: EventRecord[];
  /**
   * Resolve with the first record (among all received, including earlier ones) matching pred,
   * or reject after timeoutMs naming `what` and listing the records seen.
   */
  waitFor(pred: (r: EventRecord) => boolean, timeoutMs?: number, what?: string): Promise<EventRecord>;
  /** shorthand: first record with this event name (and node, when given) */
  waitForEvent(event: string, node?: string, timeoutMs?: number): Promise<EventRecord>;
  close(): Promise<void>;
}

export interface Engine {
  /** control socket path: <dir>/run/dst.sock */
  readonly socket: string;
  /** the engine's own directory */
  readonly dir: string;
  /** runtime dir (the socket's dir); NBD sockets go in <runDir>/nbd/<name>.sock */
  readonly runDir: string;
  readonly stateDir: string;
  /** <dir>/dst.conf, the file an `ownConfig` engine autosaves to */
  readonly configFile: string;
  /** the engine's stdout + stderr, appended across restarts */
  readonly logFile: string;
  /** pid of the running engine process (the latest one after restart) */
  readonly pid: number;
  /** true once the current engine process has exited */
  readonly exited: boolean;
  /** exit code / signal of the last engine process that exited, else null */
  readonly exitStatus: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** run `node bin/dst --socket S ...args` (never rejects for a non-zero exit) */
  dst(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** run with --json; parse stdout; throw DstCliError (with stderr) on a non-zero exit */
  dstJson<T = unknown>(args: readonly string[], opts?: RunOptions): Promise<T>;
  /** run with --json expecting failure; returns the exit code and parsed error; throws if it exited 0 */
  dstFail(args: readonly string[], expectExit?: number, opts?: RunOptions): Promise<{ code: number; error: { code: string; errno: string | null; message: string } | null; stderr: string }>;
  /** `node show NAME --json` */
  show(node: string): Promise<NodeShow>;
  /** `status --json` */
  status(): Promise<StatusShow>;
  /**
   * Send a signal. For SIGSTOP/SIGCONT it returns at once; otherwise it waits (≤ timeoutMs,
   * default 15 000) for the process to exit and returns how it exited.
   */
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null>;
  /** stop (SIGTERM, if running) and start again with the same dirs; options override the original ones */
  restart(opts?: Pick<StartEngineOptions, 'config' | 'ownConfig' | 'args' | 'env' | 'logLevel' | 'readyTimeoutMs' | 'waitStatus'>): Promise<Engine>;
  /** poll `node show` until state is `state` (or one of them); returns that show; throws with the last show and log tail */
  waitForState(node: string, state: NodeState | readonly NodeState[], timeoutMs?: number): Promise<NodeShow>;
  /** the log so far */
  log(): string;
  /** wait until the log matches re; returns the match */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** `dst events --json [--node NODE]` as a stream; resolves once `subscribed` arrived */
  events(opts?: { node?: string; timeoutMs?: number }): Promise<EventStream>;
}

/** Older name of Engine, kept for callers. */
export type EngineHandle = Engine;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: never leave engines behind when the test process exits.
  process.on('exit', () => {
    for (const c of live) {
      try { c.kill('SIGCONT'); c.kill('SIGKILL'); } catch { /* gone */ }
    }
  });
}

function tail(text: string, lines = 60): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.off('exit', onExit); resolve(false); }, timeoutMs);
    const onExit = (): void => { clearTimeout(timer); resolve(true); };
    child.once('exit', onExit);
  });
}

function canConnect(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const timer = setTimeout(() => { s.destroy(); resolve(false); }, timeoutMs);
    s.once('connect', () => { clearTimeout(timer); s.destroy(); resolve(true); });
    s.once('error', () => { clearTimeout(timer); s.destroy(); resolve(false); });
  });
}

function parseJsonError(stderr: string): { code: string; errno: string | null; message: string } | null {
  for (const line of stderr.split('\n').reverse()) {
    const s = line.trim();
    if (!s.startsWith('{')) continue;
    try {
      const v = JSON.parse(s) as { error?: { code: string; errno: string | null; message: string } };
      if (v && typeof v === 'object' && v.error) return v.error;
    } catch { /* not JSON */ }
  }
  return null;
}

export async function startEngine(t?: TestContext, opts: StartEngineOptions = {}): Promise<Engine> {
  installExitHook();
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync('/tmp/dst-e-');
  const runDir = join(dir, 'run');
  const socket = join(runDir, 'dst.sock');
  const stateDir = join(dir, 'state');
  const logFile = join(dir, 'engine.log');
  const configFile = join(dir, 'dst.conf');
  const label = opts.name ?? dir;
  if (Buffer.byteLength(socket) > 107) throw new Error(`startEngine: socket path ${socket} is too long for a unix socket`);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });

  let current = { ...opts };
  let child: ChildProcess | null = null;
  let exitStatus: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const streams = new Set<EventStream>();

  const readLog = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  async function spawnEngine(): Promise<void> {
    const args = [dstBin(), 'engine', '--socket', socket, '--state-dir', stateDir];
    if (current.ownConfig && !existsSync(configFile)) writeFileSync(configFile, '');
    const config = current.ownConfig ? configFile : current.config;
    if (config) args.push('--config', config);
    else args.push('--no-config');
    args.push('--log-level', current.logLevel ?? 'debug', ...(current.args ?? []));
    const fd = openSync(logFile, 'a');
    let c: ChildProcess;
    try {
      c = spawn(process.execPath, args, {
        stdio: ['ignore', fd, fd],
        env: mergeEnv({ DST_SOCKET: undefined, ...current.env }),
      });
    } finally {
      closeSync(fd);
    }
    child = c;
    exitStatus = null;
    live.add(c);
    c.once('exit', (code, signal) => {
      live.delete(c);
      exitStatus = { code, signal };
    });
    const spawnFailure: { error: Error | null } = { error: null };
    c.once('error', (e) => { spawnFailure.error = e; });

    const readyTimeoutMs = current.readyTimeoutMs ?? 20_000;
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (spawnFailure.error) throw new Error(`engine ${label}: could not spawn: ${spawnFailure.error.message}`);
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`engine ${label}: exited (code ${c.exitCode}, signal ${c.signalCode}) before its control socket answered\n--- log ---\n${tail(readLog())}`);
      }
      if (existsSync(socket) && (await canConnect(socket))) break;
      if (Date.now() >= deadline) {
        c.kill('SIGKILL');
        throw new Error(`engine ${label}: control socket ${socket} did not answer within ${readyTimeoutMs} ms\n--- log ---\n${tail(readLog())}`);
      }
      await sleep(50);
    }
    if (current.waitStatus) {
      const r = await engine.dst(['status', '--json'], { timeoutMs: 15_000 });
      if (r.code !== 0) throw new Error(`engine ${label}: ${describeFailure('dst', ['status', '--json'], r)}\n--- log ---\n${tail(readLog())}`);
    }
  }

  async function stopEngine(signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    try { c.kill('SIGCONT'); } catch { /* gone */ }
    c.kill(signal);
    if (!(await waitExit(c, timeoutMs))) {
      c.kill('SIGKILL');
      await waitExit(c, 5000);
    }
  }

  const engine: Engine = {
    socket, dir, runDir, stateDir, logFile, configFile,
    get pid() {
      if (!child?.pid) throw new Error(`engine ${label}: not started`);
      return child.pid;
    },
    get exited() {
      return !child || child.exitCode !== null || child.signalCode !== null;
    },
    get exitStatus() {
      return exitStatus;
    },

    dst(args, runOpts = {}) {
      return run(process.execPath, [dstBin(), '--socket', socket, ...args], {
        timeoutMs: 30_000,
        ...runOpts,
        env: { DST_SOCKET: undefined, NO_COLOR: '1', ...runOpts.env },
      });
    },

    async dstJson<T = unknown>(args: readonly string[], runOpts: RunOptions = {}): Promise<T> {
      const full = [...args, '--json'];
      const r = await engine.dst(full, runOpts);
      if (r.code !== 0) {
        throw new DstCliError(`engine ${label}: ${describeFailure('dst', full, r)}`, r, parseJsonError(r.stderr));
      }
      try {
        return JSON.parse(r.stdout) as T;
      } catch (e) {
        throw new DstCliError(`engine ${label}: dst ${full.join(' ')}: stdout is not one JSON document: ${(e as Error).message}\n${r.stdout.slice(0, 2000)}`, r, null);
      }
    },

    async dstFail(args, expectExit, runOpts = {}) {
      const full = [...args, '--json'];
      const r = await engine.dst(full, runOpts);
      if (r.code === 0) throw new Error(`engine ${label}: dst ${full.join(' ')} succeeded but was expected to fail\n${r.stdout.slice(0, 2000)}`);
      if (expectExit !== undefined && r.code !== expectExit) {
        throw new Error(`engine ${label}: expected exit ${expectExit}; ${describeFailure('dst', full, r)}`);
      }
      return { code: r.code, error: parseJsonError(r.stderr), stderr: r.stderr };
    },

    show(node) {
      return engine.dstJson<NodeShow>(['node', 'show', node]);
    },

    status() {
      return engine.dstJson<StatusShow>(['status']);
    },

    async kill(signal = 'SIGTERM', timeoutMs = 15_000) {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return exitStatus;
      c.kill(signal);
      if (signal === 'SIGSTOP' || signal === 'SIGCONT' || signal === 'SIGTSTP') return null;
      if (!(await waitExit(c, timeoutMs))) {
        throw new Error(`engine ${label}: still running ${timeoutMs} ms after ${signal}\n--- log ---\n${tail(readLog())}`);
      }
      return exitStatus;
    },

    async restart(over = {}) {
      await stopEngine('SIGTERM', 15_000);
      current = { ...current, ...over };
      await spawnEngine();
      return engine;
    },

    async waitForState(node, state, timeoutMs = 20_000) {
      const want: readonly NodeState[] = typeof state === 'string' ? [state] : state;
      const deadline = Date.now() + timeoutMs;
      let last: NodeShow | null = null;
      let lastErr = '';
      for (;;) {
        try {
          last = await engine.show(node);
          if (want.includes(last.state)) return last;
        } catch (e) {
          lastErr = (e as Error).message;
        }
        if (Date.now() >= deadline) {
          const seen = last ? `state ${last.state}${last.reason ? ` (reason ${last.reason})` : ''}` : `no show: ${lastErr}`;
          throw new Error(`engine ${label}: node ${node} did not reach ${want.join('|')} within ${timeoutMs} ms; last ${seen}\n--- log ---\n${tail(readLog())}`);
        }
        await sleep(100);
      }
    },

    log: readLog,

    async waitForLog(re, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = readLog().match(re);
        if (m) return m;
        if (Date.now() >= deadline) throw new Error(`engine ${label}: log did not match ${re} within ${timeoutMs} ms\n--- log ---\n${tail(readLog())}`);
        await sleep(50);
      }
    },

    async events(evOpts = {}) {
      const args = [dstBin(), '--socket', socket, 'events', '--json'];
      if (evOpts.node) args.push('--node', evOpts.node);
      const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: mergeEnv({ DST_SOCKET: undefined }) });
      live.add(p);
      p.once('exit', () => live.delete(p));
      const records: EventRecord[] = [];
      const waiters = new Set<() => void>();
      let stderr = '';
      p.stderr!.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
      const rl = createInterface({ input: p.stdout! });
      rl.on('line', (line) => {
        if (!line.trim()) return;
        try {
          records.push(JSON.parse(line) as EventRecord);
        } catch {
          stderr += `\n(unparsable event line: ${line})`;
        }
        for (const w of [...waiters]) w();
      });
      p.once('exit', () => { for (const w of [...waiters]) w(); });

      const stream: EventStream = {
        records,
        waitFor(pred, timeoutMs = 20_000, what = 'matching event') {
          return new Promise((resolve, reject) => {
            const check = (): boolean => {
              const hit = records.find(pred);
              if (hit) { done(); resolve(hit); return true; }
              if (p.exitCode !== null || p.signalCode !== null) {
                done();
                reject(new Error(`engine ${label}: dst events exited (${p.exitCode ?? p.signalCode}) before ${what}\n${stderr}`));
                return true;
              }
              return false;
            };
            const timer = setTimeout(() => {
              done();
              reject(new Error(`engine ${label}: no ${what} within ${timeoutMs} ms; events seen:\n${records.map((r) => JSON.stringify(r)).join('\n')}\n--- log ---\n${tail(readLog(), 30)}`));
            }, timeoutMs);
            const w = (): void => { check(); };
            const done = (): void => { clearTimeout(timer); waiters.delete(w); };
            if (!check()) waiters.add(w);
          });
        },
        waitForEvent(event, node, timeoutMs) {
          return stream.waitFor((r) => r.event === event && (node === undefined || r.node === node), timeoutMs,
            `event ${event}${node ? ` for node ${node}` : ''}`);
        },
        async close() {
          streams.delete(stream);
          rl.close();
          if (p.exitCode === null && p.signalCode === null) {
            p.kill('SIGTERM');
            if (!(await waitExit(p, 5000))) { p.kill('SIGKILL'); await waitExit(p, 5000); }
          }
        },
      };
      streams.add(stream);
      try {
        await stream.waitFor((r) => r.event === 'subscribed', evOpts.timeoutMs ?? 15_000, 'subscribed record');
      } catch (e) {
        await stream.close();
        throw e;
      }
      return stream;
    },
  };

  onCleanup(t, async () => {
    for (const s of [...streams]) await s.close();
    await stopEngine('SIGTERM', 15_000);
    if (ownDir) removeTmp(dir);
  });

  await spawnEngine();
  return engine;
}
