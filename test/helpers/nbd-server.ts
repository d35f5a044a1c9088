// External NBD servers for the NBD-backend tests (issue 17): nbdkit and qemu-nbd as child
// processes on a unix socket, stopped when the test ends. `restart` starts the same command again
// on the same socket (the kill-and-restart test); the server is up once its socket accepts.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import type { TestContext } from 'node:test';
import { waitFor } from './tools.js';

export interface NbdServer {
  /** nbd+unix:///EXPORT?socket=PATH */
  readonly uri: string;
  readonly socket: string;
  /** SIGKILL the server and wait for it to exit */
  kill(): Promise<void>;
  /** start it again on the same socket */
  restart(): Promise<void>;
}

function accepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Run `cmd args` (which must serve on `socket`); exportName goes in the URI. Example:
 *   await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, 'memory', '64M'], sock)
 */
export async function startNbdServer(t: TestContext, cmd: string, args: readonly string[], socket: string, exportName = ''): Promise<NbdServer> {
  let child: ChildProcess | null = null;
  let stderr = '';
  const start = async (): Promise<void> => {
    if (existsSync(socket)) unlinkSync(socket);
    stderr = '';
    const c = spawn(cmd, [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.on('data', (b: Buffer) => { if (stderr.length < 16384) stderr += b.toString(); });
    child = c;
    await waitFor(`${cmd} to serve on ${socket} (stderr: ${stderr})`, async () => c.exitCode === null && existsSync(socket) && await accepts(socket), 15_000);
  };
  const kill = async (): Promise<void> => {
    const c = child;
    child = null;
    if (c === null || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill('SIGKILL'); });
  };
  t.after(kill);
  await start();
  return { uri: `nbd+unix:///${exportName}?socket=${socket}`, socket, kill, restart: start };
}
