// External NBD servers for the NBD-backend tests (issue 17): nbdkit and qemu-nbd as child
// processes on a unix socket, stopped when the test ends. `restart` starts the same command again
// on the same socket (the kill-and-restart test); the server is up once its socket accepts.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import type { TestContext } from 'node:test';
import { waitFor } from './tools.js';

export interface NbdServer {
  /** nbd+unix:///EXPORT?socket=PATH or nbd://127.0.0.1:PORT/EXPORT */
  readonly uri: string;
  /** SIGKILL the server and wait for it to exit */
  kill(): Promise<void>;
  /** start it again on the same socket */
  restart(): Promise<void>;
}

function accepts(at: string | number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = typeof at === 'string' ? connect(at) : connect(at, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Run `cmd args`, which must serve on `at` (a unix socket path, or a TCP port on 127.0.0.1);
 * exportName goes in the URI. Example:
 *   await startNbdServer(t, 'nbdkit', ['-f', '-U', sock, 'memory', '64M'], sock)
 */
export async function startNbdServer(t: TestContext, cmd: string, args: readonly string[], at: string | number, exportName = ''): Promise<NbdServer> {
  let child: ChildProcess | null = null;
  let stderr = '';
  const start = async (): Promise<void> => {
    if (typeof at === 'string' && existsSync(at)) unlinkSync(at);
    stderr = '';
    const c = spawn(cmd, [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.on('data', (b: Buffer) => { if (stderr.length < 16384) stderr += b.toString(); });
    child = c;
    await waitFor(`${cmd} to serve on ${at}`, async () => {
      if (c.exitCode !== null) throw new Error(`${cmd} exited ${c.exitCode}: ${stderr}`);
      return (typeof at !== 'string' || existsSync(at)) && await accepts(at);
    }, 15_000);
  };
  const kill = async (): Promise<void> => {
    const c = child;
    child = null;
    if (c === null || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill('SIGKILL'); });
  };
  t.after(kill);
  await start();
  const uri = typeof at === 'string' ? `nbd+unix:///${exportName}?socket=${at}` : `nbd://127.0.0.1:${at}/${exportName}`;
  return { uri, kill, restart: start };
}
