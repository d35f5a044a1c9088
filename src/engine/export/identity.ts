// Export identity (DESIGN §7): a 16-byte UUID per export, stored in the state dir as
// <stateDir>/exports/<name>.id = {"disk": PATH, "uuid": UUID}. Stable across restarts; a
// different disk path under the same name gets a new identity, so a remote never replays
// writes onto another disk. Written crash-safe (fsync'd file and directories) before the export
// first serves.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../util/log.js';
import { DstError, errnoOf } from '../../util/errors.js';
import { syncDir, writeFileAtomic } from '../atomic-file.js';

export function identityPath(stateDir: string, name: string): string {
  return join(stateDir, 'exports', `${name}.id`);
}

export function uuidToBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new DstError('DST_ERR_INVALID', `bad uuid ${JSON.stringify(uuid)}`);
  return Buffer.from(hex, 'hex');
}

/**
 * Load the identity of export `name` on `disk`, creating (and storing durably) a new one when
 * there is none or the disk path changed. A file that cannot be read or parsed (torn by a crash,
 * truncated, unreadable) refuses the start naming it: a silently new identity would send every
 * remote node of this export to `failed`.
 */
export async function loadIdentity(stateDir: string, name: string, disk: string, log: Logger): Promise<Buffer> {
  const path = identityPath(stateDir, name);
  const refuse = (why: string, err?: unknown): DstError => {
    log.error('unusable identity file', { op: 'identity', path, errno: errnoOf(err), error: why });
    return new DstError('DST_ERR_IDENTITY',
      `export ${name}: identity file ${path} ${why}; restore it, or remove it to give the export a new identity (its remote nodes then go failed and must be started again)`,
      { errno: errnoOf(err) ?? 'EINVAL', cause: err });
  };
  let text: string | null = null;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw refuse(`cannot be read: ${(err as Error).message}`, err);
  }
  if (text !== null) {
    let stored: { disk?: unknown; uuid?: unknown };
    try {
      stored = JSON.parse(text) as { disk?: unknown; uuid?: unknown };
      if (typeof stored?.disk !== 'string' || typeof stored.uuid !== 'string') throw new Error('no disk or uuid');
      const bytes = uuidToBytes(stored.uuid);
      if (stored.disk === disk) return bytes;
    } catch (err) {
      throw refuse(`is damaged (${text.length} bytes: ${(err as Error).message})`, err);
    }
    log.info('disk path changed: new export identity', { op: 'identity', was: stored.disk, disk });
  }
  const uuid = randomUUID();
  try {
    const dir = join(stateDir, 'exports');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await syncDir(stateDir);
    await writeFileAtomic(path, JSON.stringify({ disk, uuid }) + '\n', { where: `export ${name}: identity` });
  } catch (err) {
    log.error('cannot store export identity', { op: 'identity', path, errno: errnoOf(err), error: (err as Error).message });
    throw new DstError('DST_ERR_IO', `cannot store the identity of export ${name} in ${path}: ${(err as Error).message}`,
      { errno: errnoOf(err), cause: err });
  }
  log.info('new export identity', { op: 'identity', uuid, disk });
  return uuidToBytes(uuid);
}
