// The `fuse` method: nbdfuse (Debian libnbd-bin) exposes the node's NBD socket as the file
// MOUNTDIR/nbd, and losetup turns that file into /dev/loopN with direct I/O and 4 KiB sectors.
// nbdfuse runs in the foreground as the engine's child, supervised; the loop device is watched
// through /sys/block/loopN/loop/backing_file.
//
// Teardown order: losetup -d (the loop lets go of the file), fusermount3 -u (nbdfuse exits),
// wait for nbdfuse (SIGTERM, then SIGKILL, if it lingers), remove the pid file and mount dir.
import { DstError } from '../../util/errors.js';
import {
  blockName, fusermountArgs, losetupAttachArgs, losetupDetachArgs, nbdfuseArgs, nbdfuseFile, umountArgs,
} from './argv.js';
import { type AttachMethod, type AttachRequest, type LiveAttachment, type MethodDeps, Supervisor, waitUntil } from './method.js';
import { loopsBackedBy, mountsAt } from './mounts.js';
import type { AttachmentRecord } from './record.js';
import { describeRun, type Helper, type System } from './system.js';

export const FUSE_INSTALL_HINT = 'apt-get install libnbd-bin fuse3';

/** The backing file of a loop device, or null when the loop device is free or gone. */
export async function loopBacking(sys: System, device: string): Promise<string | null> {
  const b = await sys.readFile(`/sys/block/${blockName(device)}/loop/backing_file`);
  return b === null ? null : b.trim().replace(/ \(deleted\)$/, '');
}

/** nbdfuse processes serving `file` (found through /proc/PID/cmdline). */
export async function nbdfusePids(sys: System, file: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await sys.readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let cmd: string | null = null;
    try {
      cmd = await sys.readFile(`/proc/${e}/cmdline`);
    } catch {
      continue;
    }
    if (!cmd) continue;
    const argv = cmd.split('\0');
    if (!argv[0] || !/(^|\/)nbdfuse$/.test(argv[0])) continue;
    if (argv.includes(file)) out.push(Number(e));
  }
  return out;
}

interface Parts {
  name: string;
  mountDir: string;
  pidFile: string;
  device: string | null;
  /** the child we spawned, when this engine did */
  helper: Helper | null;
}

export function createFuseMethod(deps: MethodDeps): AttachMethod {
  const { sys, log } = deps;

  /** Remove whatever of an attachment exists; returns what was done and what is left. */
  async function teardown(p: Parts): Promise<{ done: string[]; left: string[] }> {
    const file = nbdfuseFile(p.mountDir);
    const done: string[] = [];
    const left: string[] = [];
    const lg = { node: p.name, op: 'detach' };

    // 1. loop devices on our file (the recorded one, and any other a crash left behind)
    const loops = new Set(await loopsBackedBy(sys, (b) => b === file));
    if (p.device !== null && (await loopBacking(sys, p.device)) === file) loops.add(p.device);
    for (const dev of loops) {
      const args = losetupDetachArgs(dev);
      const r = await sys.run('losetup', args, { timeoutMs: deps.stepTimeoutMs });
      if (r.code !== 0) log.warn(describeRun('losetup', args, r), lg);
      const freed = await waitUntil(sys, deps.settleTimeoutMs, async () => (await loopBacking(sys, dev)) !== file);
      if (freed) done.push(`losetup -d ${dev}`);
      else left.push(`loop device ${dev} still bound to ${file} (still in use: it is released once its last user closes it)`);
    }

    // 2. the FUSE mount: fusermount3 -u, else umount, else umount -l
    if ((await mountsAt(sys, p.mountDir)).length > 0) {
      const tries: [string, string[]][] = [];
      const fm = sys.which('fusermount3') ?? sys.which('fusermount');
      if (fm) tries.push([fm, fusermountArgs(p.mountDir)]);
      tries.push(['umount', umountArgs(p.mountDir, false)], ['umount', umountArgs(p.mountDir, true)]);
      for (const [cmd, args] of tries) {
        const r = await sys.run(cmd, args, { timeoutMs: deps.stepTimeoutMs });
        if ((await mountsAt(sys, p.mountDir)).length === 0) {
          done.push(`${cmd.replace(/.*\//, '')} ${args.join(' ')}`);
          break;
        }
        log.debug(describeRun(cmd, args, r), lg);
      }
      if ((await mountsAt(sys, p.mountDir)).length > 0) left.push(`FUSE mount ${p.mountDir}`);
    }

    // 3. nbdfuse: it exits once unmounted; otherwise SIGTERM, then SIGKILL
    const pids = new Set(await nbdfusePids(sys, file));
    if (p.helper && !p.helper.hasExited && p.helper.pid !== null) pids.add(p.helper.pid);
    const alive = async (pid: number): Promise<boolean> => {
      if (p.helper && p.helper.pid === pid) return !p.helper.hasExited;
      return (await nbdfusePids(sys, file)).includes(pid);
    };
    for (const pid of pids) {
      let gone = await waitUntil(sys, deps.settleTimeoutMs, async () => !(await alive(pid)));
      for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
        if (gone) break;
        log.warn(`nbdfuse (pid ${pid}) did not exit after the unmount; sending ${sig}`, lg);
        if (p.helper && p.helper.pid === pid) p.helper.kill(sig);
        else sys.kill(pid, sig);
        gone = await waitUntil(sys, Math.min(deps.settleTimeoutMs, 5000), async () => !(await alive(pid)));
      }
      if (gone) done.push(`nbdfuse ${pid} exited`);
      else left.push(`nbdfuse process ${pid}`);
    }

    // 4. pid file and mount dir
    await sys.unlink(p.pidFile).catch(() => {});
    if ((await mountsAt(sys, p.mountDir)).length === 0) {
      try {
        await sys.rmdir(p.mountDir);
      } catch (err) {
        left.push(`directory ${p.mountDir} (${(err as Error).message})`);
      }
    }
    return { done, left };
  }

  return {
    name: 'fuse',

    async missing() {
      if (!sys.which('nbdfuse')) return `nbdfuse is not installed (${FUSE_INSTALL_HINT})`;
      if (!(await sys.exists('/dev/fuse'))) return '/dev/fuse does not exist (modprobe fuse; in a container, give it /dev/fuse)';
      if (!sys.which('losetup')) return 'losetup is not installed (apt-get install util-linux)';
      if (!sys.isRoot()) return 'the fuse method needs root (losetup sets up /dev/loopN)';
      return null;
    },

    async attach(req: AttachRequest): Promise<LiveAttachment> {
      const file = nbdfuseFile(req.mountDir);
      if ((await mountsAt(sys, req.mountDir)).length > 0) {
        throw new DstError('DST_ERR_BUSY', `${req.mountDir} is already mounted (a leftover; restarting the engine cleans it, or: fusermount3 -u ${req.mountDir})`, { errno: 'EBUSY' });
      }
      const fuseTimeout = Number((await sys.readFile('/proc/sys/fs/fuse/default_request_timeout'))?.trim() ?? '0');
      if (fuseTimeout > 0) {
        log.warn(`/proc/sys/fs/fuse/default_request_timeout is ${fuseTimeout} s: the kernel aborts the FUSE connection (and the device) when an outage lasts longer; set it to 0 to let the node's deadline decide`,
          { node: req.name, op: 'attach' });
      }
      await sys.mkdir(req.mountDir, 0o700);
      await sys.unlink(req.pidFile);
      const args = nbdfuseArgs({ mountDir: req.mountDir, pidFile: req.pidFile, socket: req.socket, exportName: req.exportName, readonly: req.readonly });
      log.info(`running nbdfuse ${args.join(' ')}`, { node: req.name, op: 'attach' });
      const helper = sys.spawn('nbdfuse', args);
      const parts: Parts = { name: req.name, mountDir: req.mountDir, pidFile: req.pidFile, device: null, helper };
      const fail = async (code: 'DST_ERR_IO' | 'DST_ERR_TIMEOUT', msg: string): Promise<never> => {
        const { left } = await teardown(parts);
        throw new DstError(code, left.length ? `${msg}; left behind: ${left.join(', ')}` : msg, { errno: code === 'DST_ERR_TIMEOUT' ? 'ETIMEDOUT' : 'EIO' });
      };
      try {
        await req.progress({ helperPid: helper.pid, mountDir: req.mountDir });
        const up = await waitUntil(sys, deps.settleTimeoutMs,
          async () => helper.hasExited || ((await sys.exists(req.pidFile)) && (await sys.exists(file))));
        if (helper.hasExited) {
          const ex = await helper.exited;
          return await fail('DST_ERR_IO', `nbdfuse exited (${ex.signal ?? `code ${ex.code}`})${helper.stderrTail() ? `: ${helper.stderrTail()}` : ''}`);
        }
        if (!up) return await fail('DST_ERR_TIMEOUT', `nbdfuse did not serve ${file} within ${deps.settleTimeoutMs} ms${helper.stderrTail() ? `: ${helper.stderrTail()}` : ''}`);

        const largs = losetupAttachArgs(file, req.readonly);
        log.info(`running losetup ${largs.join(' ')}`, { node: req.name, op: 'attach' });
        const r = await sys.run('losetup', largs, { timeoutMs: deps.stepTimeoutMs });
        const device = r.stdout.trim().split('\n').pop() ?? '';
        if (r.code !== 0 || !/^\/dev\/loop\d+$/.test(device)) return await fail('DST_ERR_IO', describeRun('losetup', largs, r));
        parts.device = device;
        await req.progress({ device });

        const sup = new Supervisor(deps.clock, deps.pollMs, async () => {
          const b = await loopBacking(sys, device);
          if (b !== file) return `${device} was detached outside dst (its backing file is ${b ?? 'gone'})`;
          return null;
        });
        void helper.exited.then((ex) => {
          const tail = helper.stderrTail();
          sup.broken(`nbdfuse exited (${ex.signal ?? `code ${ex.code}`})${tail ? `: ${tail}` : ''}`);
        });
        return {
          method: 'fuse',
          device,
          watch: (onBroken) => sup.start(onBroken),
          unwatch: () => sup.stop(),
          async teardown() {
            sup.stop();
            const { done, left } = await teardown(parts);
            log.debug(`teardown: ${done.join(', ') || 'nothing to do'}`, { node: req.name, op: 'detach' });
            if (left.length) throw new DstError('DST_ERR_IO', `left behind: ${left.join(', ')}`, { errno: 'EBUSY' });
          },
        };
      } catch (err) {
        if (err instanceof DstError) throw err;
        return await fail('DST_ERR_IO', (err as Error).message);
      }
    },

    async cleanup(rec: AttachmentRecord, paths): Promise<string[]> {
      const { done, left } = await teardown({ name: rec.name, mountDir: rec.mountDir ?? paths.mountDir, pidFile: paths.pidFile, device: rec.device, helper: null });
      if (rec.helperPid !== null && (await nbdfusePids(sys, nbdfuseFile(rec.mountDir ?? paths.mountDir))).includes(rec.helperPid)) {
        left.push(`nbdfuse process ${rec.helperPid}`);
      }
      if (left.length) throw new DstError('DST_ERR_IO', `left behind: ${left.join(', ')}`, { errno: 'EBUSY' });
      return done;
    },
  };
}
