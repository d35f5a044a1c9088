// Pure command lines of the helpers an attachment runs (DESIGN §10). No I/O here: the unit tests
// check these exact argv arrays, and man/dst.8 documents the same commands.

/** Block size handed to the kernel (nbd) and the loop device's logical sector size (fuse). */
export const ATTACH_BLOCK_SIZE = 4096;

/**
 * Request timeout given to nbd.ko, in seconds. The engine, not the kernel, decides what an outage
 * means (its own deadline: resend-timeout x (max-resends + 1)), so the kernel's must never fire
 * first: ~11.6 days, well inside the kernel's `timeout * HZ` (unsigned int) for any HZ <= 4000.
 * (nbd-client always sends NBD_ATTR_TIMEOUT; 0 would mean "no timeout" only on newer kernels and
 * 30 s on older ones.)
 */
export const NBD_KERNEL_TIMEOUT_S = 1_000_000;

export interface NbdConnectOptions {
  /** the remote node's NBD unix socket */
  socket: string;
  /** export name to ask for (the node's name; "" is also accepted by the endpoint) */
  exportName: string;
  /** /dev/nbdN */
  device: string;
  readonly: boolean;
}

/**
 * `nbd-client -unix SOCKET -N NAME -b 4096 -t 1000000 [-readonly] /dev/nbdN`: netlink mode (the
 * default since nbd 3.17: the kernel keeps the socket and nbd-client exits once the device is set
 * up; no -nonetlink, no -persist, no -swap).
 */
export function nbdClientConnectArgs(o: NbdConnectOptions): string[] {
  const args = ['-unix', o.socket, '-N', o.exportName, '-b', String(ATTACH_BLOCK_SIZE), '-t', String(NBD_KERNEL_TIMEOUT_S)];
  if (o.readonly) args.push('-readonly');
  args.push(o.device);
  return args;
}

/** `nbd-client -d /dev/nbdN` */
export function nbdClientDisconnectArgs(device: string): string[] {
  return ['-d', device];
}

/** `nbd-client -c /dev/nbdN`: exit 0 = connected (prints the pid), 1 = not connected, 2 = error. */
export function nbdClientCheckArgs(device: string): string[] {
  return ['-c', device];
}

/** nbd+unix URI naming the export and the socket (the socket path percent-encoded, slashes kept). */
export function nbdUnixUriFor(socket: string, exportName: string): string {
  return `nbd+unix:///${encodeURIComponent(exportName)}?socket=${encodeURIComponent(socket).replace(/%2F/gi, '/')}`;
}

export interface NbdfuseOptions {
  /** the directory nbdfuse mounts on; the device file is MOUNTDIR/nbd */
  mountDir: string;
  /** nbdfuse writes its pid here once it serves */
  pidFile: string;
  socket: string;
  exportName: string;
  readonly: boolean;
}

/** The file nbdfuse exposes inside its mount dir. */
export function nbdfuseFile(mountDir: string): string {
  return `${mountDir.replace(/\/+$/, '')}/nbd`;
}

/**
 * `nbdfuse -P PIDFILE [-r] MOUNTDIR/nbd nbd+unix:///NAME?socket=SOCKET`. nbdfuse stays in the
 * foreground (the engine supervises it). libnbd has no request timeout, so an outage the engine
 * rides out is only a slow request to nbdfuse and the loop device.
 */
export function nbdfuseArgs(o: NbdfuseOptions): string[] {
  const args = ['-P', o.pidFile];
  if (o.readonly) args.push('-r');
  args.push(nbdfuseFile(o.mountDir), nbdUnixUriFor(o.socket, o.exportName));
  return args;
}

/** `losetup --find --show --direct-io=on --sector-size 4096 [--read-only] FILE` → prints /dev/loopN. */
export function losetupAttachArgs(file: string, readonly: boolean): string[] {
  const args = ['--find', '--show', '--direct-io=on', '--sector-size', String(ATTACH_BLOCK_SIZE)];
  if (readonly) args.push('--read-only');
  args.push(file);
  return args;
}

/** `losetup -d /dev/loopN` */
export function losetupDetachArgs(device: string): string[] {
  return ['-d', device];
}

/** `fusermount3 -u MOUNTDIR` */
export function fusermountArgs(mountDir: string): string[] {
  return ['-u', mountDir];
}

/** `umount [-l] PATH` */
export function umountArgs(path: string, lazy: boolean): string[] {
  return lazy ? ['-l', path] : [path];
}

/** "/dev/nbd3" → 3; anything else → null. */
export function nbdIndex(device: string): number | null {
  const m = /^\/dev\/nbd(\d+)$/.exec(device);
  return m ? Number(m[1]) : null;
}

/** "/dev/loop7" → "loop7", "/dev/nbd0" → "nbd0" (the /sys/block name). */
export function blockName(device: string): string {
  return device.replace(/^\/dev\//, '');
}
