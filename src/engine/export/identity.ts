// Export identity (DESIGN §7): a 16-byte UUID per export, stored in the state dir as
// <stateDir>/exports/<name>.id = {"disk": PATH, "uuid": UUID}. Stable across restarts; a
// different disk path under the same name gets a new identity, so a remote never replays
// writes onto another disk.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../util/log.js';
import { DstError, errnoOf } from '../../util/errors.js';

export function identityPath(stateDir: string, name: string): string {
  return join(stateDir, 'exports', `${name}.id`);
}

export function uuidToBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new DstError('DST_ERR_INVALID', `bad uuid ${JSON.stringify(uuid)}`);
  return Buffer.from(hex, 'hex');
}

export function bytesToUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Load the identity of export `name` on `disk`, creating (and storing) a new one when needed. */
export async function loadIdentity(stateDir: string, name: string, disk: string, log: Logger): Promise<Buffer> {
  const path = identityPath(stateDir, name);
  try {
    const stored = JSON.parse(await readFile(path, 'utf8')) as { disk?: unknown; uuid?: unknown };
    if (stored.disk === disk && typeof stored.uuid === 'string') return uuidToBytes(stored.uuid);
    if (stored.disk !== disk) {
      log.info('disk path changed: new export identity', { op: 'identity', was: stored.disk, disk });
    }
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') log.warn('unreadable identity file: making a new identity', { op: 'identity', path, errno: errnoOf(err), error: (err as Error).message });
  }
  const uuid = randomUUID();
  try {
    await mkdir(join(stateDir, 'exports'), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ disk, uuid }) + '\n', { mode: 0o600 });
    await rename(tmp, path);
  } catch (err) {
    log.error('cannot store export identity', { op: 'identity', path, errno: errnoOf(err), error: (err as Error).message });
    throw new DstError('DST_ERR_IO', `cannot store the identity of export ${name} in ${path}: ${(err as Error).message}`,
      { errno: errnoOf(err), cause: err });
  }
  log.info('new export identity', { op: 'identity', uuid, disk });
  return uuidToBytes(uuid);
}
