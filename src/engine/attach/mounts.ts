// Who uses a block device, and which FUSE mounts are ours: /proc/self/mountinfo (matched by the
// device's major:minor, so any name of the device counts), /proc/swaps and /sys/block/X/holders.
import { blockName } from './argv.js';
import type { System } from './system.js';

export interface MountEntry {
  /** "7:0" */
  majMin: string;
  mountPoint: string;
  fsType: string;
  source: string;
}

/** Undo mountinfo's octal escapes (\040 = space, \011 tab, \012 newline, \134 backslash). */
export function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parse /proc/self/mountinfo. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const parts = line.split(' ');
    const sep = parts.indexOf('-');
    if (sep < 0 || parts.length < sep + 3) continue;
    out.push({
      majMin: parts[2]!,
      mountPoint: unescapeMount(parts[4]!),
      fsType: parts[sep + 1]!,
      source: unescapeMount(parts[sep + 2]!),
    });
  }
  return out;
}

export async function mounts(sys: System): Promise<MountEntry[]> {
  return parseMountinfo((await sys.readFile('/proc/self/mountinfo')) ?? '');
}

/** "7:0" of a block device, from /sys/class/block/NAME/dev; null when it does not exist. */
export async function deviceMajMin(sys: System, device: string): Promise<string | null> {
  const t = await sys.readFile(`/sys/class/block/${blockName(device)}/dev`);
  return t === null ? null : t.trim();
}

export interface DeviceUsers {
  /** mount points of filesystems on the device */
  mountPoints: string[];
  /** the device is an active swap area */
  swap: boolean;
  /** block devices stacked on it (device-mapper, md, ...) */
  holders: string[];
}

export function inUse(u: DeviceUsers): boolean {
  return u.mountPoints.length > 0 || u.swap || u.holders.length > 0;
}

/** "mounted on /mnt/a, /mnt/b; used as swap; held by dm-0" */
export function describeUsers(u: DeviceUsers): string {
  const parts: string[] = [];
  if (u.mountPoints.length) parts.push(`mounted on ${u.mountPoints.join(', ')}`);
  if (u.swap) parts.push('used as swap');
  if (u.holders.length) parts.push(`held by ${u.holders.join(', ')}`);
  return parts.join('; ');
}

export async function deviceUsers(sys: System, device: string): Promise<DeviceUsers> {
  const majMin = await deviceMajMin(sys, device);
  const none: DeviceUsers = { mountPoints: [], swap: false, holders: [] };
  if (majMin === null) return none;
  const mountPoints = (await mounts(sys)).filter((m) => m.majMin === majMin || m.source === device).map((m) => m.mountPoint);
  const swaps = ((await sys.readFile('/proc/swaps')) ?? '').split('\n').slice(1).map((l) => l.split(/\s+/)[0]).filter(Boolean);
  const swap = swaps.includes(device);
  const holders = await sys.readdir(`/sys/class/block/${blockName(device)}/holders`);
  return { mountPoints: [...new Set(mountPoints)], swap, holders };
}

/** Mount entries whose mount point is `dir` (a FUSE mount of ours, or something stacked on it). */
export async function mountsAt(sys: System, dir: string): Promise<MountEntry[]> {
  const d = dir.replace(/\/+$/, '');
  return (await mounts(sys)).filter((m) => m.mountPoint === d);
}

/** Loop devices whose backing file is `file` (or lies under `dir/`), from /sys/block/loop*\/loop/backing_file. */
export async function loopsBackedBy(sys: System, match: (backing: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  for (const name of await sys.readdir('/sys/block')) {
    if (!/^loop\d+$/.test(name)) continue;
    const b = await sys.readFile(`/sys/block/${name}/loop/backing_file`);
    if (b === null) continue;
    const backing = b.trim().replace(/ \(deleted\)$/, '');
    if (match(backing)) out.push(`/dev/${name}`);
  }
  return out;
}
