// `dst top` in a terminal (tmux): every node is listed, the write rate moves from 0 once writes run,
// `q` quits with exit 0; `--once --json` is one JSON document with the same rows and fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { blockContent } from '../helpers/blocks.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { dstBin, requireTool, run, waitFor } from '../helpers/tools.js';
import type { NodeShow } from '../../src/engine/types.js';

const ROW_KEYS = ['state', 'readIops', 'writeIops', 'readBytesPerSecond', 'writeBytesPerSecond', 'read', 'write', 'inflight', 'resends', 'reconnects', 'resync'];

test('dst top under tmux: every node, rates that move, q quits; --once --json', async (t) => {
  if (!requireTool(t, 'tmux', 'tmux')) return;
  const pair = await startPair(t, { size: 16 * 1024 * 1024 });
  const rem = pair.rem;
  await rem.dstJson(['node', 'add', 'second', '--remote', pair.listen, '--export', pair.exportName]);
  await rem.dstJson<NodeShow>(['node', 'start', 'second', '--wait', '10s']);

  const tmux = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    run('tmux', ['-L', `dst-top-${process.pid}`, ...args], { timeoutMs: 10_000 });
  t.after(async () => { await tmux('kill-server'); });
  const cmd = `${process.execPath} ${dstBin()} --socket ${rem.socket} top; echo TOP-EXIT=$?; sleep 60`;
  const started = await tmux('new-session', '-d', '-s', 'top', '-x', '150', '-y', '30', cmd);
  assert.equal(started.code, 0, started.stderr);
  const capture = async (): Promise<string> => (await tmux('capture-pane', '-p', '-t', 'top')).stdout;
  /** the W-IOPS cell of the node's row */
  const writeIops = (screen: string, node: string): number | null => {
    const head = screen.split('\n').find((l) => l.startsWith('NAME'));
    const row = screen.split('\n').find((l) => l.startsWith(`${node} `));
    if (!head || !row) return null;
    const cols = head.trim().split(/\s{2,}/);
    return Number(row.trim().split(/\s{2,}/)[cols.indexOf('W-IOPS')]);
  };

  const idle = await waitFor('both nodes on screen', async () => {
    const s = await capture();
    return s.includes(`${pair.remoteName} `) && s.includes('second ') && writeIops(s, pair.remoteName) !== null ? s : null;
  }, 15_000);
  assert.equal(writeIops(idle, pair.remoteName), 0, `idle:\n${idle}`);

  const c = await NbdClient.connect(pair.socket);
  t.after(() => c.close());
  let writing = true;
  const loop = (async () => {
    for (let i = 0; writing; i = (i + 1) % 1024) await c.write(i * 4096, blockContent(i, 1));
  })();
  const busy = await waitFor('the write rate on screen', async () => {
    const s = await capture();
    return (writeIops(s, pair.remoteName) ?? 0) > 0 ? s : null;
  }, 15_000);
  assert.ok(busy.split('\n').find((l) => l.startsWith(`${pair.remoteName} `)) !== idle.split('\n').find((l) => l.startsWith(`${pair.remoteName} `)));

  const json = await rem.dstJson<{ intervalMs: number; nodes: Record<string, unknown>[] }>(['top', '--once']);
  assert.ok(json.intervalMs >= 900, 'rates from two answers an interval apart');
  assert.deepEqual(json.nodes.map((n) => n.name).sort(), [pair.remoteName, 'second'].sort());
  for (const n of json.nodes) {
    for (const k of [...ROW_KEYS, 'name', 'role', 'legs']) assert.ok(k in n, `--once --json row has ${k}`);
  }
  assert.ok((json.nodes.find((n) => n.name === pair.remoteName)!.writeIops as number) > 0, 'the writes show in --once too');
  writing = false;
  await loop;

  await tmux('send-keys', '-t', 'top', 'q');
  const end = await waitFor('top to quit', async () => {
    const s = await capture();
    return /TOP-EXIT=\d+/.test(s) ? s : null;
  }, 10_000);
  assert.match(end, /TOP-EXIT=0/);
});
