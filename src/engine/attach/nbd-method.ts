// The `nbd` method: Debian's nbd-client in netlink mode hands a connection to the node's NBD socket
// to nbd.ko, which serves /dev/nbdN. nbd-client exits once the device is set up (the kernel holds
// the socket), so supervision watches the device: /sys/block/nbdN/pid (what `nbd-client -c`
// reads) disappears when the device is disconnected, and its size drops to 0.
import { DstError } from '../../util/errors.js';
import {
  blockName, nbdClientConnectArgs, nbdClientDisconnectArgs, nbdIndex,
} from './argv.js';
import { type AttachMethod, type AttachRequest, type LiveAttachment, type MethodDeps, Supervisor, waitUntil } from './method.js';
import type { AttachmentRecord } from './record.js';
import { describeRun, type System } from './system.js';

export const NBD_INSTALL_HINT = 'apt-get install nbd-client; modprobe nbd';

/** Whether /dev/nbdN is connected (what `nbd-client -c` checks). */
export async function nbdConnected(sys: System, device: string): Promise<boolean> {
  return (await sys.readFile(`/sys/block/${blockName(device)}/pid`)) !== null;
}

/** The lowest /dev/nbdN that is not connected, or null. */
export async function pickNbdDevice(sys: System, skip: ReadonlySet<string> = new Set()): Promise<string | null> {
  const idx = (await sys.readdir('/sys/block'))
    .map((n) => /^nbd(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  for (const i of idx) {
    const dev = `/dev/nbd${i}`;
    if (skip.has(dev)) continue;
    if (await nbdConnected(sys, dev)) continue;
    const size = await sys.readFile(`/sys/block/nbd${i}/size`);
    if (size !== null && Number(size.trim()) > 0) continue;
    if (!(await sys.exists(dev))) continue;
    return dev;
  }
  return null;
}

export function createNbdMethod(deps: MethodDeps): AttachMethod {
  const { sys, log } = deps;

  async function disconnect(device: string): Promise<string | null> {
    const args = nbdClientDisconnectArgs(device);
    const r = await sys.run('nbd-client', args, { timeoutMs: deps.stepTimeoutMs });
    const gone = await waitUntil(sys, deps.settleTimeoutMs, async () => !(await nbdConnected(sys, device)));
    if (gone) return null;
    return r.code === 0 ? `${device} still connected after nbd-client -d` : describeRun('nbd-client', args, r);
  }

  return {
    name: 'nbd',

    async missing() {
      if (!sys.which('nbd-client')) return `nbd-client is not installed (${NBD_INSTALL_HINT})`;
      if (!(await sys.exists('/dev/nbd0'))) return `the nbd kernel module is not loaded: /dev/nbd0 does not exist (modprobe nbd; nbd.ko is not available in every kernel or container)`;
      if (!sys.isRoot()) return 'the nbd method needs root (nbd-client configures /dev/nbdN)';
      return null;
    },

    async attach(req: AttachRequest): Promise<LiveAttachment> {
      const device = await pickNbdDevice(sys);
      if (device === null) {
        throw new DstError('DST_ERR_BUSY', 'every /dev/nbdN is in use (load nbd with more devices: modprobe nbd nbds_max=N)', { errno: 'EBUSY' });
      }
      await req.progress({ device });
      const args = nbdClientConnectArgs({ socket: req.socket, exportName: req.exportName, device, readonly: req.readonly });
      log.info(`running nbd-client ${args.join(' ')}`, { node: req.name, op: 'attach' });
      const r = await sys.run('nbd-client', args, { timeoutMs: deps.stepTimeoutMs });
      if (r.code !== 0) {
        if (await nbdConnected(sys, device)) await disconnect(device);
        throw new DstError('DST_ERR_IO', describeRun('nbd-client', args, r), { errno: 'EIO' });
      }
      if (!(await waitUntil(sys, deps.settleTimeoutMs, () => nbdConnected(sys, device)))) {
        await disconnect(device);
        throw new DstError('DST_ERR_IO', `nbd-client exited 0 but ${device} is not connected`, { errno: 'EIO' });
      }
      const sup = new Supervisor(deps.clock, deps.pollMs, async () => {
        if (!(await nbdConnected(sys, device))) return `${device} was disconnected (no /sys/block/${blockName(device)}/pid)`;
        const size = await sys.readFile(`/sys/block/${blockName(device)}/size`);
        if (size !== null && Number(size.trim()) === 0) return `${device} has size 0 (the kernel dropped the connection)`;
        return null;
      });
      return {
        method: 'nbd',
        device,
        watch: (onBroken) => sup.start(onBroken),
        unwatch: () => sup.stop(),
        async teardown() {
          sup.stop();
          if (!(await nbdConnected(sys, device))) return;
          const left = await disconnect(device);
          if (left !== null) throw new DstError('DST_ERR_IO', left, { errno: 'EBUSY' });
        },
      };
    },

    async cleanup(rec: AttachmentRecord): Promise<string[]> {
      const done: string[] = [];
      if (rec.device !== null && nbdIndex(rec.device) !== null && (await nbdConnected(sys, rec.device))) {
        const left = await disconnect(rec.device);
        if (left !== null) throw new DstError('DST_ERR_IO', left, { errno: 'EBUSY' });
        done.push(`disconnected ${rec.device}`);
      }
      return done;
    },
  };
}
