// The CLI's start-up: `dst --version` against `node -e 0` (the floor any Node program pays), run
// alternately so both see the same machine, as the median of each. Shell scripts that drive many
// nodes pay this per call.
import { spawnSync } from 'node:child_process';
import { median } from './stats.js';

export interface Startup { runs: number; nodeMs: number; dstMs: number; ratio: number }

function timeMs(argv: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, argv, { stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`node ${argv.join(' ')} exited ${r.status ?? r.signal}`);
  return ms;
}

export function measureStartup(dstBin: string, runs = 10): Startup {
  const node: number[] = [], dst: number[] = [];
  for (let i = 0; i < runs; i++) {
    node.push(timeMs(['-e', '0']));
    dst.push(timeMs([dstBin, '--version']));
  }
  const nodeMs = median(node), dstMs = median(dst);
  return { runs, nodeMs, dstMs, ratio: dstMs / nodeMs };
}

export function startupText(s: Startup): string {
  return `CLI start-up: dst --version ${s.dstMs.toFixed(0)} ms, node -e 0 ${s.nodeMs.toFixed(0)} ms: ${s.ratio.toFixed(2)}x (median of ${s.runs})`;
}
