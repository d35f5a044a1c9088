// The seam between attachments and the machine: running tools, spawning supervised helpers and the
// few file operations on /sys, /proc and /dev they need. The real one is `realSystem`; unit tests
// pass a fake, so the command lines and the supervision of the nbd method are tested without
// nbd.ko, FUSE or root.
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, stat, unlink } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { errnoOf } from '../../util/errors.js';
import { realClock } from '../../util/clock.js';

export interface ToolResult {
  /** exit code, or null when killed by a signal */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** killed because it ran longer than timeoutMs */
  timedOut: boolean;
}

export interface HelperExit {
  code: number | null;
  signal: string | null;
}

/** A long-running helper process (nbdfuse) the engine supervises. */
export interface Helper {
  readonly pid: number | null;
  /** resolves once the process exited (or could not be started: code null, signal null) */
  readonly exited: Promise<HelperExit>;
  readonly hasExited: boolean;
  kill(signal: NodeJS.Signals): void;
  /** the last lines it wrote to stderr */
  stderrTail(): string;
}

export interface System {
  /** Run a tool to completion, killed (SIGKILL) after timeoutMs (default 30 s). Never rejects for an exit code. */
  run(cmd: string, args: readonly string[], opts?: { timeoutMs?: number }): Promise<ToolResult>;
  /**
   * Start a helper in its own session (so a Ctrl-C on the engine's terminal does not reach it:
   * the engine tears it down in order), stdin/stdout closed, stderr kept for logs.
   */
  spawn(cmd: string, args: readonly string[]): Helper;
  /** Full path of a tool on PATH (plus the sbin dirs), or null. */
  which(tool: string): string | null;
  exists(path: string): Promise<boolean>;
  /** File contents, or null when it does not exist. */
  readFile(path: string): Promise<string | null>;
  /** Entries of a directory, [] when it does not exist. */
  readdir(path: string): Promise<string[]>;
  mkdir(path: string, mode: number): Promise<void>;
  /** Remove a file; a missing one is fine. */
  unlink(path: string): Promise<void>;
  /** Remove an empty directory; a missing one is fine. */
  rmdir(path: string): Promise<void>;
  /** Send a signal; false when there is no such process. */
  kill(pid: number, signal: NodeJS.Signals | 0): boolean;
  sleep(ms: number): Promise<void>;
  /** the engine runs as root (losetup and nbd-client need it) */
  isRoot(): boolean;
}

const TAIL_BYTES = 4096;

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function whichOnPath(tool: string, pathEnv = process.env.PATH ?? ''): string | null {
  if (tool.includes('/')) return isExecutable(tool) ? tool : null;
  const dirs = pathEnv.split(delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) if (!dirs.includes(extra)) dirs.push(extra);
  for (const d of dirs) {
    const p = join(d, tool);
    if (isExecutable(p)) return p;
  }
  return null;
}

export const realSystem: System = {
  run(cmd, args, opts = {}) {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    return new Promise((resolve) => {
      const child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout.on('data', (c: Buffer) => { if (stdout.length < 1 << 20) stdout += c.toString('utf8'); });
      child.stderr.on('data', (c: Buffer) => { if (stderr.length < 1 << 20) stderr += c.toString('utf8'); });
      const timer = realClock.setTimer(timeoutMs, () => { timedOut = true; child.kill('SIGKILL'); });
      child.once('error', (err) => {
        timer.cancel();
        resolve({ code: 127, signal: null, stdout, stderr: stderr + `${cmd}: ${err.message}`, timedOut: false });
      });
      child.once('close', (code, signal) => {
        timer.cancel();
        resolve({ code, signal, stdout, stderr, timedOut });
      });
    });
  },

  spawn(cmd, args) {
    const child = spawn(cmd, [...args], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let tail = '';
    let done = false;
    child.stderr!.on('data', (c: Buffer) => {
      tail = (tail + c.toString('utf8')).slice(-TAIL_BYTES);
    });
    const exited = new Promise<HelperExit>((resolve) => {
      child.once('error', (err) => {
        tail += `${cmd}: ${err.message}`;
        if (!done) { done = true; resolve({ code: null, signal: null }); }
      });
      child.once('exit', (code, signal) => {
        if (!done) { done = true; resolve({ code, signal }); }
      });
    });
    // The helper lives in its own session; it must not keep the engine's event loop alive.
    child.unref();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    return {
      pid: child.pid ?? null,
      exited,
      get hasExited() { return done; },
      kill(signal) {
        if (!done) {
          try { child.kill(signal); } catch { /* gone */ }
        }
      },
      stderrTail: () => tail.trim(),
    };
  },

  which: (tool) => whichOnPath(tool),

  async exists(path) {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  },

  async readFile(path) {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      const e = errnoOf(err);
      if (e === 'ENOENT' || e === 'ENOTDIR' || e === 'ENODEV' || e === 'ENXIO') return null;
      throw err;
    }
  },

  async readdir(path) {
    try {
      return await readdir(path);
    } catch (err) {
      const e = errnoOf(err);
      if (e === 'ENOENT' || e === 'ENOTDIR') return [];
      throw err;
    }
  },

  async mkdir(path, mode) {
    await mkdir(path, { recursive: true, mode });
  },

  async unlink(path) {
    try {
      await unlink(path);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
  },

  async rmdir(path) {
    try {
      await rmdir(path);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
  },

  kill(pid, signal) {
    try {
      process.kill(pid, signal);
      return true;
    } catch (err) {
      if (errnoOf(err) === 'EPERM') return true;
      return false;
    }
  },

  sleep: (ms) => new Promise((r) => { realClock.setTimer(ms, r); }),

  isRoot: () => typeof process.getuid === 'function' && process.getuid() === 0,
};

/** "nbd-client exited 1: <stderr>" for logs and error messages. */
export function describeRun(cmd: string, args: readonly string[], r: ToolResult): string {
  const how = r.timedOut ? 'timed out' : r.signal ? `was killed by ${r.signal}` : `exited ${r.code}`;
  const err = r.stderr.trim().split('\n').filter(Boolean).slice(-3).join('; ');
  return `${[cmd, ...args].join(' ')} ${how}${err ? `: ${err}` : ''}`;
}
