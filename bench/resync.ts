// The resync rows of `npm run bench` (issue 15): on a two-leg mirror (bench/run.ts setupDstLegs),
//   resync-idle               MiB/s a behind leg (every region marked) resyncs at with nothing else running
//   randwrite-4k-qd32         IOPS with both legs in sync (no resync)
//   randwrite-4k-resync       IOPS while a leg with every region marked resyncs
// and their ratio, which is what the resync pace (src/engine/layout/resync-pace.ts) keeps high.
// A leg is made behind by stopping its export engine (SIGSTOP: leg-timeout sends it behind, every
// write meanwhile marks its regions) and brought back with SIGCONT, so it keeps its port.
import type { Row } from './stats.js';

export interface MirrorSetup {
  uri: string;
  /** the remote engine's control socket (node `vol`) */
  socket: string;
  /** pid of the export engine serving leg i */
  legPid(i: number): number;
  rss(): { remote: number; export: number } | null;
  stop(): Promise<void>;
}

export interface ResyncBenchEnv {
  setup(): Promise<MirrorSetup>;
  /** fio: randwrite 4K QD32 for the bench's runtime, or `fill`: one sequential 1M write pass over the device */
  fio(uri: string, workload: 'randwrite-4k-qd32' | 'fill'): Omit<Row, 'system' | 'rssMiB'>;
  dst(socket: string, ...args: string[]): unknown;
  waitFor(what: string, ok: () => boolean, ms?: number): Promise<void>;
}

export const RESYNC_SYSTEM = 'dst-mirror2';

interface LegView { state: string; outOfSyncBytes: number; resync: { rate: number } | null }
const legsOf = (env: ResyncBenchEnv, s: MirrorSetup): LegView[] => (env.dst(s.socket, 'node', 'show', 'vol') as { legs: LegView[] }).legs;

/** Leg 1 away while the whole device is written: every region is marked for it. */
async function markAll(env: ResyncBenchEnv, s: MirrorSetup): Promise<number> {
  process.kill(s.legPid(1), 'SIGSTOP');
  try {
    env.fio(s.uri, 'fill');
    await env.waitFor('leg 1 behind', () => legsOf(env, s)[1]!.state === 'behind');
    return legsOf(env, s)[1]!.outOfSyncBytes;
  } finally {
    process.kill(s.legPid(1), 'SIGCONT');
  }
}

/** One round: the three rows (`log` says what it measured on the side). */
export async function benchResync(env: ResyncBenchEnv, log: (line: string) => void): Promise<Row[]> {
  const s = await env.setup();
  try {
    const row = (workload: string, r: Omit<Row, 'system' | 'rssMiB' | 'workload'>): Row => ({ system: RESYNC_SYSTEM, ...r, workload, rssMiB: s.rss() });
    env.fio(s.uri, 'randwrite-4k-qd32'); // warm-up (fresh engines are not optimised yet), not counted
    const without = env.fio(s.uri, 'randwrite-4k-qd32');

    await markAll(env, s);
    await env.waitFor('leg 1 resyncing', () => legsOf(env, s)[1]!.state === 'resyncing');
    const during = env.fio(s.uri, 'randwrite-4k-qd32');
    const after = legsOf(env, s)[1]!;
    if (after.resync) log(`resync pace at the end of the loaded run: ${(after.resync.rate / 2 ** 20).toFixed(0)} MiB/s`);
    else log('randwrite-4k-resync row: the resync ended before the loaded run did (the ratio is only partly under resync)');
    await env.waitFor('leg 1 in sync', () => legsOf(env, s)[1]!.state === 'in-sync', 300_000);

    const missed = await markAll(env, s);
    const t0 = performance.now();
    await env.waitFor('leg 1 in sync (idle resync)', () => legsOf(env, s)[1]!.state === 'in-sync', 300_000);
    const secs = (performance.now() - t0) / 1000;
    const mibps = missed / 2 ** 20 / secs;
    log(`idle resync: ${(missed / 2 ** 20).toFixed(0)} MiB in ${secs.toFixed(1)} s`);
    return [
      row('resync-idle', { mibps, iops: NaN, p50us: NaN, p99us: NaN }),
      row(without.workload, without),
      row('randwrite-4k-resync', during),
    ];
  } finally {
    await s.stop();
  }
}

/** The ratio line of the rows above (median rows of one run). */
export function resyncRatioText(rows: readonly Row[]): string | null {
  const get = (w: string): Row | undefined => rows.find((r) => r.system === RESYNC_SYSTEM && r.workload === w);
  const without = get('randwrite-4k-qd32'), during = get('randwrite-4k-resync');
  if (!without || !during) return null;
  return `randwrite-4k-qd32    ${RESYNC_SYSTEM} during resync / without = ${(during.iops / without.iops).toFixed(2)}`;
}
