// Runs the product's own fault proxy (`dst fault-proxy`) as a child process and switches it
// with `dst fault-proxy ctl`, exactly as an operator rehearsing an outage would.
import type { TestContext } from 'node:test';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { dstBin, run } from './tools.js';
import { tmpDir } from './tmp.js';

export interface ProxyHandle {
  /** "127.0.0.1:PORT" the proxy listens on */
  listen: string;
  control: string;
  /** run one ctl command, e.g. ctl('stall'); returns the JSON reply */
  ctl(...command: string[]): Promise<unknown>;
}

export async function startProxy(t: TestContext, target: string, opts: { capture?: string } = {}): Promise<ProxyHandle> {
  const dir = tmpDir(t, 'dst-px-');
  const control = join(dir, 'ctl.sock');
  const args = [dstBin(), 'fault-proxy', '--listen', '127.0.0.1:0', '--target', target, '--control', control];
  if (opts.capture) args.push('--capture', opts.capture);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  t.after(() => { child.kill('SIGTERM'); });
  const listen = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fault proxy did not start: ${stderr}`)), 10_000);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`fault proxy exited ${code}: ${stderr}`)); });
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      const m = /listening (\S+)/.exec(line);
      if (m) resolve(m[1]!);
      else reject(new Error(`unexpected first line from fault proxy: ${line}`));
    });
  });
  return {
    listen,
    control,
    async ctl(...command: string[]) {
      const res = await run(process.execPath, [dstBin(), 'fault-proxy', 'ctl', control, ...command]);
      if (res.code !== 0) throw new Error(`fault-proxy ctl ${command.join(' ')} failed: ${res.stderr}`);
      const text = res.stdout.trim();
      return text ? JSON.parse(text) : null;
    },
  };
}
