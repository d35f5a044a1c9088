// External tools for integration, interop and e2e tests: find them, skip (or, in CI, fail) when
// one is missing, run them with a bounded time, and find the repository root from dist/.
import { spawn, type SpawnOptions } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

/** The repository root: the nearest ancestor of this file holding dst's package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'dst') return dir;
      } catch { /* not ours: keep climbing */ }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`repoRoot: no package.json named "dst" above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** Absolute path of bin/dst (the CLI stub). */
export function dstBin(): string {
  return resolve(repoRoot(), 'bin', 'dst');
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Full path of an executable found on PATH (plus the sbin dirs a non-root PATH may lack), or null. */
export function which(name: string): string | null {
  if (name.includes('/')) return isExecutable(name) ? resolve(name) : null;
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(extra)) dirs.push(extra);
  for (const d of dirs) {
    const p = join(d, name);
    if (isExecutable(p)) return p;
  }
  return null;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Strict mode: under CI (CI=true) a missing tool fails the test instead of skipping it, because
 * .ci/run installs every tool and "nothing skipped" is part of done. DST_ALLOW_SKIP=1 turns
 * strict mode off; DST_STRICT_TOOLS=1 turns it on outside CI.
 */
export function strictTools(): boolean {
  if (process.env.DST_ALLOW_SKIP === '1') return false;
  if (process.env.DST_STRICT_TOOLS === '1') return true;
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

/**
 * True when `name` is on PATH. Otherwise skips the test with a message naming the tool and its
 * Debian package (or throws under CI, see strictTools) and returns false:
 *   if (!requireTool(t, 'nbdinfo', 'libnbd-bin')) return;
 */
export function requireTool(t: TestContext, name: string, pkg: string): boolean {
  if (which(name)) return true;
  return skipOrFail(t, `${name} not found on PATH: install the Debian package ${pkg} (apt-get install ${pkg}; .ci/run does)`);
}

/** Skip the test saying what is missing (`msg`), or fail under CI, where nothing may skip; returns false. */
export function skipOrFail(t: TestContext, msg: string): false {
  if (strictTools()) throw new Error(msg);
  t.skip(msg);
  return false;
}

/** Several tools at once: [[name, pkg], ...]. */
export function requireTools(t: TestContext, tools: ReadonlyArray<readonly [string, string]>): boolean {
  for (const [name, pkg] of tools) if (!requireTool(t, name, pkg)) return false;
  return true;
}

/** True when running as root; otherwise skips (or throws under CI) saying why root is needed. */
export function requireRoot(t: TestContext, why = 'this test needs root'): boolean {
  if (isRoot()) return true;
  return skipOrFail(t, `${why} (running as uid ${process.getuid?.() ?? '?'})`);
}

export interface RunOptions {
  /** kill the process (SIGKILL) after this many ms; default 60 000 */
  timeoutMs?: number;
  cwd?: string;
  /** merged over process.env (a value of undefined removes the variable) */
  env?: Record<string, string | undefined>;
  /** written to stdin, then stdin is closed; default: stdin closed at once */
  input?: string | Buffer;
  /** cap on captured stdout/stderr each (bytes); default 64 MiB; the rest is dropped */
  maxBuffer?: number;
}

export interface RunResult {
  /** exit code; when killed by a signal (the timeout included), 128 + the signal number, as a shell reports it */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** wall time in ms */
  ms: number;
}

export function mergeEnv(extra?: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Run a command to completion (bounded by timeoutMs). Never rejects for a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const maxBuffer = opts.maxBuffer ?? 64 * 1024 * 1024;
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const spawnOpts: SpawnOptions = { cwd: opts.cwd, env: mergeEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] };
    const child = spawn(cmd, [...args], spawnOpts);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let timedOut = false;
    child.stdout!.on('data', (c: Buffer) => {
      if (outLen < maxBuffer) { out.push(c); outLen += c.length; }
    });
    child.stderr!.on('data', (c: Buffer) => {
      if (errLen < maxBuffer) { err.push(c); errLen += c.length; }
    });
    child.stdin!.on('error', () => { /* the child may exit before reading its input */ });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`run ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({
        code: code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0), signal, timedOut, ms: Date.now() - started,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/** run(), then throw (naming the command, exit code and stderr) unless it exited 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(describeFailure(cmd, args, r));
  return r;
}

export function describeFailure(cmd: string, args: readonly string[], r: RunResult): string {
  const how = r.timedOut ? `timed out after ${r.ms} ms` : r.signal ? `killed by ${r.signal}` : `exited ${r.code}`;
  return `${cmd} ${args.join(' ')}: ${how}\n--- stderr ---\n${r.stderr.trimEnd()}\n--- stdout ---\n${r.stdout.slice(0, 4000).trimEnd()}`;
}

/** Resolve after ms (for polling loops; tests of policy arithmetic use the fake clock instead). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll fn until it returns a truthy value or timeoutMs passes (then throws naming `what`). */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const why = lastErr instanceof Error ? `: last error: ${lastErr.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}
