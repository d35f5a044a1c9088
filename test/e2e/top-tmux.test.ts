// `dst top` in a terminal (tmux) while fio (--ioengine=nbd) runs on a mirror and on a single-leg
// node: every node and the mirror's leg rows are on screen, two refreshes show non-zero rates that
// differ, `q` quits with exit 0; `--once --json` is one JSON document whose node rows and legs[]
// entries carry the same fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutDevice, startLegs, waitLegStates } from '../helpers/legs.js';
import { dstBin, requireTool, run, waitFor } from '../helpers/tools.js';
import type { NodeShow } from '../../src/engine/types.js';

const M = 1024 * 1024;
const ROW_KEYS = ['state', 'readIops', 'writeIops', 'readBytesPerSecond', 'writeBytesPerSecond', 'read', 'write', 'inflight', 'resends', 'reconnects', 'resync'];
const RATE_COLUMNS = ['R-IOPS', 'W-IOPS', 'R-MiB/s', 'W-MiB/s'];

/** A screen's rows by name (the mirror's legs as "vol └ 0"), each cell by its column head. */
function rowsOf(screen: string): Map<string, Record<string, string>> {
  const lines = screen.split('\n');
  const head = lines.find((l) => l.startsWith('NAME'));
  const rows = new Map<string, Record<string, string>>();
  if (!head) return rows;
  const cols = head.trim().split(/\s{2,}/);
  let node = '';
  for (const l of lines.slice(lines.indexOf(head) + 1)) {
    if (l.trim() === '') continue;
    const cells = l.trim().split(/\s{2,}/);
    const leg = /^└ (\d+) /.exec(cells[0]!);
    if (!leg) node = cells[0]!;
    rows.set(leg ? `${node} └ ${leg[1]}` : node, Object.fromEntries(cols.map((c, i) => [c, cells[i] ?? ''])));
  }
  return rows;
}

test('dst top under tmux with fio: every node and leg, rates that move, q quits; --once --json', async (t) => {
  if (!requireTool(t, 'tmux', 'tmux') || !requireTool(t, 'fio', 'fio')) return;
  const { legs } = await startLegs(t, [16 * M, 16 * M, 16 * M]);
  const { show, rem } = await layoutDevice(t, legs.slice(0, 2), ['--layout', 'mirror']);
  await waitLegStates(rem, ['in-sync', 'in-sync']);
  await rem.dstJson(['node', 'add', 'single', '--remote', legs[2]!.listen]);
  const single = await rem.dstJson<NodeShow>(['node', 'start', 'single', '--wait', '10s']);

  // random reads and writes at a Poisson-paced rate: the load stays small on a shared machine, and
  // the count in each refresh varies
  const fio = run('fio', [
    '--ioengine=nbd', '--rw=randrw', '--bs=4k', '--iodepth=4', '--size=8M', '--time_based', '--runtime=25',
    '--rate_iops=150,150', '--rate_process=poisson', '--output-format=json',
    '--name=mirror', `--uri=${show.nbd!.uri}`, '--name=single', `--uri=${single.nbd!.uri}`,
  ], { timeoutMs: 60_000 });

  const tmux = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    run('tmux', ['-L', `dst-top-${process.pid}`, ...args], { timeoutMs: 10_000 });
  t.after(async () => { await tmux('kill-server'); });
  const cmd = `${process.execPath} ${dstBin()} --socket ${rem.socket} top; echo TOP-EXIT=$?; sleep 60`;
  const started = await tmux('new-session', '-d', '-s', 'top', '-x', '200', '-y', '30', cmd);
  assert.equal(started.code, 0, started.stderr);
  const capture = async (): Promise<string> => (await tmux('capture-pane', '-p', '-t', 'top')).stdout;
  const names = ['vol', 'vol └ 0', 'vol └ 1', 'single'];
  /** every row on screen with non-zero write IOPS, the nodes' read IOPS too (a leg may get no read: they go to the least busy leg, leg 0 on a tie) */
  const busy = (screen: string): boolean => {
    const rows = rowsOf(screen);
    return names.every((n) => Number(rows.get(n)?.['W-IOPS']) > 0 && (n.includes('└') || Number(rows.get(n)?.['R-IOPS']) > 0));
  };
  const first = await waitFor('every node and leg busy on screen', async () => {
    const s = await capture();
    return busy(s) ? s : null;
  }, 20_000);
  const headOf = (s: string): string => s.split('\n')[0]!;
  const second = await waitFor('the next refresh', async () => {
    const s = await capture();
    return headOf(s) !== headOf(first) && busy(s) ? s : null;
  }, 10_000, 200);
  const rates = (s: string): string[] => names.flatMap((n) => RATE_COLUMNS.map((c) => rowsOf(s).get(n)![c]!));
  assert.notDeepEqual(rates(second), rates(first), `the rates move between refreshes:\n${first}\n${second}`);

  const json = await rem.dstJson<{ intervalMs: number; nodes: Record<string, unknown>[] }>(['top', '--once']);
  assert.ok(json.intervalMs >= 900, 'rates from two answers an interval apart');
  assert.deepEqual(json.nodes.map((n) => n.name).sort(), ['single', 'vol']);
  for (const n of json.nodes) {
    assert.deepEqual(Object.keys(n).sort(), [...ROW_KEYS, 'name', 'role', 'legs'].sort(), `node row ${String(n.name)}`);
  }
  const mirrorLegs = json.nodes.find((n) => n.name === 'vol')!.legs as Record<string, unknown>[];
  assert.equal(mirrorLegs.length, 2);
  for (const l of mirrorLegs) {
    assert.deepEqual(Object.keys(l).sort(), [...ROW_KEYS, 'index', 'remote'].sort(), `legs[${String(l.index)}] keys`);
    assert.ok((l.writeIops as number) > 0, 'each leg takes the writes');
    assert.equal(typeof l.inflight, 'number', 'a leg\'s in flight is known');
  }
  assert.deepEqual(json.nodes.find((n) => n.name === 'single')!.legs, []);

  await tmux('send-keys', '-t', 'top', 'q');
  const end = await waitFor('top to quit', async () => {
    const s = await capture();
    return /TOP-EXIT=\d+/.test(s) ? s : null;
  }, 10_000);
  assert.match(end, /TOP-EXIT=0/);
  const res = await fio;
  assert.equal(res.code, 0, `fio: ${res.stderr}\n${res.stdout.slice(-1500)}`);
});
