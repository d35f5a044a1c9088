// Helpers for the `dst attach` e2e tests: the tools they need, a guard that unmounts and removes
// whatever a failed test left (registered FIRST, so it runs before the engines stop and the temp
// dirs are removed), and a check that nothing was left behind: loop devices, mounts, nbdfuse.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { requireRoot, requireTools, run, skipOrFail, waitFor } from './tools.js';

/** Root, the fuse method's tools, /dev/fuse, mkfs/fsck/mount. False = skipped. */
export function requireFuseAttach(t: TestContext): boolean {
  if (!requireRoot(t, 'dst attach needs root (losetup, mount)')) return false;
  if (!requireTools(t, [
    ['nbdfuse', 'libnbd-bin'], ['fusermount3', 'fuse3'], ['losetup', 'util-linux'], ['mount', 'util-linux'],
    ['umount', 'util-linux'], ['blockdev', 'util-linux'], ['mkfs.ext4', 'e2fsprogs'], ['fsck.ext4', 'e2fsprogs'],
  ])) return false;
  if (!existsSync('/dev/fuse')) {
    return skipOrFail(t, '/dev/fuse does not exist: load the fuse module (modprobe fuse) or give the container /dev/fuse');
  }
  return true;
}

/** Loop devices whose backing file lies under one of `dirs` ("/dev/loop3 /tmp/x/disk.img"). */
export function loopsUnder(dirs: readonly string[]): string[] {
  const out: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync('/sys/block').filter((n) => /^loop\d+$/.test(n));
  } catch { /* no sysfs */ }
  for (const n of names) {
    let b: string;
    try {
      b = readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').trim().replace(/ \(deleted\)$/, '');
    } catch {
      continue;
    }
    if (dirs.some((d) => b.startsWith(d.replace(/\/+$/, '') + '/'))) out.push(`/dev/${n} ${b}`);
  }
  return out;
}

/** /proc/mounts entries whose mount point or source lies under one of `dirs`. */
export function mountsUnder(dirs: readonly string[]): string[] {
  const text = readFileSync('/proc/mounts', 'utf8');
  const dec = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split('\n').filter(Boolean).filter((l) => {
    const [src, mp] = l.split(' ').map(dec);
    return dirs.some((d) => (mp ?? '').startsWith(d.replace(/\/+$/, '') + '/') || (mp ?? '') === d || (src ?? '').startsWith(d.replace(/\/+$/, '') + '/'));
  });
}

/** Live nbdfuse processes with an argument under one of `dirs` ("pid cmdline"). */
export function nbdfuseUnder(dirs: readonly string[]): string[] {
  const out: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue;
    }
    if (!argv[0] || !/(^|\/)nbdfuse$/.test(argv[0])) continue;
    if (argv.some((a) => dirs.some((d) => a.includes(d)))) out.push(`${e} ${argv.join(' ')}`);
  }
  return out;
}

/** Everything left under `dirs`: loop devices, mounts, nbdfuse processes. */
export function leftovers(dirs: readonly string[]): string[] {
  return [
    ...loopsUnder(dirs).map((l) => `loop device: ${l}`),
    ...mountsUnder(dirs).map((m) => `mount: ${m}`),
    ...nbdfuseUnder(dirs).map((p) => `process: ${p}`),
  ];
}

/** Wait (bounded) until nothing is left under `dirs`; returns what is still left. */
export async function settledLeftovers(dirs: readonly string[], timeoutMs = 10_000): Promise<string[]> {
  try {
    await waitFor('nothing left behind', () => leftovers(dirs).length === 0, timeoutMs, 100);
    return [];
  } catch {
    return leftovers(dirs);
  }
}

export interface AttachGuard {
  /** directories whose loops, mounts and nbdfuse processes are ours (engine dirs, mount points) */
  dirs: string[];
  /** a mount point to unmount at the end (lazily if busy) */
  mounted(mp: string): void;
  unmounted(mp: string): void;
}

/**
 * Register (before startPair/startEngine, so it runs first) a cleanup that unmounts the tracked
 * mount points, then removes any loop device, FUSE mount or nbdfuse process under guard.dirs.
 */
export function attachGuard(t: TestContext): AttachGuard {
  const mps = new Set<string>();
  const guard: AttachGuard = {
    dirs: [],
    mounted: (mp) => { mps.add(mp); },
    unmounted: (mp) => { mps.delete(mp); },
  };
  t.after(async () => {
    for (const mp of [...mps].reverse()) {
      const r = await run('umount', [mp], { timeoutMs: 60_000 });
      if (r.code !== 0) await run('umount', ['-l', mp], { timeoutMs: 30_000 });
    }
    if (!guard.dirs.length) return;
    for (const m of mountsUnder(guard.dirs)) {
      const mp = m.split(' ')[1]!;
      if (m.split(' ')[2] !== 'fuse') await run('umount', ['-l', mp], { timeoutMs: 30_000 });
    }
    for (const l of loopsUnder(guard.dirs)) await run('losetup', ['-d', l.split(' ')[0]!], { timeoutMs: 30_000 });
    for (const m of mountsUnder(guard.dirs)) {
      const mp = m.split(' ')[1]!;
      const r = await run('fusermount3', ['-u', mp], { timeoutMs: 30_000 });
      if (r.code !== 0) await run('umount', ['-l', mp], { timeoutMs: 30_000 });
    }
    for (const p of nbdfuseUnder(guard.dirs)) {
      try { process.kill(Number(p.split(' ')[0]), 'SIGKILL'); } catch { /* gone */ }
    }
  });
  return guard;
}

/** echo 3 > /proc/sys/vm/drop_caches; a read-only /proc/sys (some containers) is reported, not fatal. */
export function dropCaches(t: TestContext): void {
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
  } catch (err) {
    t.diagnostic(`cannot drop caches (${(err as Error).message}); the remount alone re-reads the filesystem`);
  }
}

/** Lines of the kernel log (dmesg), or null when it cannot be read (unprivileged container). */
export async function kernelLog(): Promise<string[] | null> {
  const r = await run('dmesg', [], { timeoutMs: 15_000 });
  if (r.code !== 0) return null;
  return r.stdout.split('\n');
}

/** Kernel log lines reporting an I/O or filesystem error on `device` ("/dev/loop3" → loop3). */
export function ioErrorLines(lines: readonly string[], device: string): string[] {
  const dev = device.replace(/^\/dev\//, '');
  const re = new RegExp(`(I/O error, dev ${dev}\\b|Buffer I/O error on dev(ice)? ${dev}\\b|EXT4-fs (error|warning) \\(device ${dev}\\)|blk_update_request: I/O error, dev ${dev}\\b)`);
  return lines.filter((l) => re.test(l));
}
