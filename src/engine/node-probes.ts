// What the host says about the resources a node asks for, before the registry stores it: the
// disk (there, sized, accessible, or creatable) and the listen port (free to bind). Errors are
// DstErrors naming `where` (the command and node), the path or address, and the errno.
import { constants as fsConstants } from 'node:fs';
import { access, open, stat, unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { DstError, errnoOf } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { parseHostPort, type HostPort } from '../util/parse.js';
import { blockDeviceSize } from './export/backend.js';
import { diskId, sameDisk } from './export/disk-lock.js';
import type { ExportConfig } from './types.js';
import { TxFlag } from '../protocol/nbd.js';
import { isNbdUri, parseNbdUri } from '../protocol/nbd-uri.js';
import { realClock } from '../util/clock.js';
import { probeNbd, txFlagsText } from './export/nbd-link.js';

/**
 * The size of an export's disk; when it is missing and `create` is given, whether its directory
 * lets us create it (then the size is `create` and mustCreate is true). Checks read (and, unless
 * read-only, write) access and the configured size against the disk's.
 */
export async function probeDisk(c: ExportConfig, where: string, create: number | null, log: Logger):
Promise<{ diskSize: number; mustCreate: boolean }> {
  if (isNbdUri(c.disk)) return { diskSize: await probeNbdDisk(c, where, log), mustCreate: false };
  let diskSize: number;
  let mustCreate = false;
  let st;
  try {
    st = await stat(c.disk, { bigint: true });
  } catch (err) {
    const errno = errnoOf(err);
    if (errno !== 'ENOENT' || create === null) {
      log.debug(`stat ${c.disk}: ${(err as Error).message}`, { node: c.name, op: where, errno });
      if (errno === 'ENOENT') {
        throw new DstError('DST_ERR_NOT_FOUND', `${where}: disk ${c.disk}: no such file (ENOENT); use --create SIZE to make one`, { errno });
      }
      throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk}: ${(err as Error).message}`, { errno, cause: err });
    }
  }
  if (st) {
    if (st.isFile()) diskSize = Number(st.size);
    else if (st.isBlockDevice()) {
      try {
        diskSize = await blockDeviceSize(st.rdev, c.disk);
      } catch (err) {
        throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
      }
    } else {
      throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk}: not a regular file or block device`, { errno: st.isDirectory() ? 'EISDIR' : 'EINVAL' });
    }
    if (create !== null && diskSize < create) {
      throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk} exists with ${diskSize} bytes, less than --create ${create}; remove it or create less`, { errno: 'EEXIST' });
    }
    try {
      await access(c.disk, fsConstants.R_OK | (c.readonly ? 0 : fsConstants.W_OK));
    } catch (err) {
      const errno = errnoOf(err);
      throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk}: no ${c.readonly ? 'read' : 'read/write'} access (${errno})${c.readonly ? '' : '; use --readonly for a read-only export'}`, { errno });
    }
  } else {
    const dir = dirname(c.disk);
    try {
      const ds = await stat(dir);
      if (!ds.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      await access(dir, fsConstants.W_OK);
    } catch (err) {
      const errno = errnoOf(err);
      throw new DstError(errno === 'ENOENT' ? 'DST_ERR_NOT_FOUND' : 'DST_ERR_INVALID',
        `${where}: cannot create disk ${c.disk}: directory ${dir}: ${errno === 'ENOENT' ? 'no such directory' : (err as Error).message} (${errno})`, { errno });
    }
    diskSize = create!;
    mustCreate = true;
  }
  if (diskSize === 0) throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk} is empty (0 bytes)`, { errno: 'EINVAL' });
  if (c.size !== null && c.size > diskSize) {
    throw new DstError('DST_ERR_INVALID', `${where}: size ${c.size} is larger than disk ${c.disk} (${diskSize} bytes)`, { errno: 'EINVAL' });
  }
  return { diskSize, mustCreate };
}

/**
 * An NBD URI disk: connect once to learn the size and flags (the server's refusal, e.g. an unknown
 * export name, is in the error). A read-only server makes a read-only export: said here once.
 */
async function probeNbdDisk(c: ExportConfig, where: string, log: Logger): Promise<number> {
  let info;
  try {
    info = await probeNbd(parseNbdUri(c.disk), realClock);
  } catch (err) {
    const e = err instanceof DstError ? err : new DstError('DST_ERR_IO', (err as Error).message, { errno: errnoOf(err), cause: err });
    throw new DstError(e.code, `${where}: disk ${c.disk}: ${e.message}`, { errno: e.errno, cause: err });
  }
  log.info(`NBD server ${c.disk}: ${info.size} bytes, flags ${txFlagsText(info.flags)}`, { node: c.name, op: where });
  if ((info.flags & TxFlag.READ_ONLY) !== 0 && !c.readonly) {
    log.warn(`NBD server ${c.disk} serves the export read-only: so will node ${c.name}`, { node: c.name, op: where });
  }
  if (info.size === 0) throw new DstError('DST_ERR_INVALID', `${where}: disk ${c.disk} is empty (0 bytes)`, { errno: 'EINVAL' });
  if (c.size !== null && c.size > info.size) {
    throw new DstError('DST_ERR_INVALID', `${where}: size ${c.size} is larger than disk ${c.disk} (${info.size} bytes)`, { errno: 'EINVAL' });
  }
  return info.size;
}

/** Make a sparse file of `size` bytes at `path`; an existing one is reused as it is. */
export async function createDisk(node: string, path: string, size: number, where: string, log: Logger): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') {
      log.info(`disk ${path} exists; reusing it`, { node, op: where });
      return;
    }
    throw new DstError('DST_ERR_INVALID', `${where}: cannot create disk ${path}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
  }
  try {
    await fh.truncate(size);
    log.info(`created sparse disk ${path} of ${size} bytes`, { node, op: where });
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(path).catch(() => {});
    throw new DstError('DST_ERR_INVALID', `${where}: cannot size disk ${path}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
  }
  await fh.close();
}

function testBind(hp: HostPort): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ host: hp.host, port: hp.port, exclusive: true }, () => srv.close(() => resolve()));
  });
}

/** Bind the export's listen address once and let it go: is it local, free and permitted? */
export async function probeListen(c: ExportConfig, hp: HostPort, where: string, log: Logger): Promise<void> {
  try {
    await testBind(hp);
  } catch (err) {
    const errno = errnoOf(err);
    log.debug(`test bind ${c.listen}: ${(err as Error).message}`, { node: c.name, op: where, errno });
    if (errno === 'EADDRINUSE') throw new DstError('DST_ERR_BUSY', `${where}: listen ${c.listen}: port in use (EADDRINUSE)`, { errno });
    if (errno === 'EADDRNOTAVAIL') throw new DstError('DST_ERR_INVALID', `${where}: listen ${c.listen}: not a local address (EADDRNOTAVAIL)`, { errno });
    if (errno === 'EACCES') throw new DstError('DST_ERR_INVALID', `${where}: listen ${c.listen}: permission denied (EACCES); ports below 1024 need privileges`, { errno });
    throw new DstError('DST_ERR_INVALID', `${where}: listen ${c.listen}: ${(err as Error).message}`, { errno, cause: err });
  }
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** Whether two listen addresses would take the same port (a wildcard takes it on every address; port 0 never clashes). */
function portsClash(a: HostPort, b: HostPort): boolean {
  if (a.port === 0 || b.port === 0 || a.port !== b.port) return false;
  return a.host === b.host || WILDCARDS.has(a.host) || WILDCARDS.has(b.host);
}

/** Refuse a listen address whose port another export (`others`) takes. */
export function checkListenClash(c: ExportConfig, others: readonly ExportConfig[], where: string): void {
  const mine = parseHostPort(c.listen);
  for (const o of others) {
    if (portsClash(mine, parseHostPort(o.listen))) {
      throw new DstError('DST_ERR_BUSY', `${where}: listen ${c.listen}: port already used by node ${o.name}`, { errno: 'EADDRINUSE' });
    }
  }
}

/** One disk, one export: refuse a disk that is the same file (any path, symlink, hard link) as another export's. */
export async function checkDiskClash(c: ExportConfig, others: readonly ExportConfig[], where: string): Promise<void> {
  if (isNbdUri(c.disk)) return; // the NBD server decides who may share its export
  const mine = await diskId(c.disk);
  if (mine === null) return; // not there yet: checked again at start
  for (const o of others) {
    const theirs = isNbdUri(o.disk) ? null : await diskId(o.disk);
    if (theirs !== null && sameDisk(mine, theirs)) {
      throw new DstError('DST_ERR_BUSY', `${where}: disk ${c.disk}${mine.real !== c.disk ? ` (${mine.real})` : ''} is the same file as the disk ${o.disk} of node ${o.name}: one disk, one export`,
        { errno: 'EBUSY' });
    }
  }
}
