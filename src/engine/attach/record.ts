// Attachments recorded in the state dir: <stateDir>/attachments/<name>.json, written before each
// step that leaves something on the machine (so a crashed engine's leftovers can be found at the
// next start) and removed once the attachment is fully torn down.
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf } from '../../util/errors.js';

export type AttachMethodName = 'nbd' | 'fuse';

export interface AttachmentRecord {
  name: string;
  method: AttachMethodName;
  /** /dev/loopN or /dev/nbdN once known */
  device: string | null;
  /** fuse: the nbdfuse mount dir (the device file is MOUNTDIR/nbd) */
  mountDir: string | null;
  /** fuse: pid of nbdfuse */
  helperPid: number | null;
  /** the NBD socket the helper connects to */
  socket: string;
  /** pid of the engine that made it */
  enginePid: number;
  /** wall-clock ms */
  createdAt: number;
}

export function attachmentsDir(stateDir: string): string {
  return join(stateDir, 'attachments');
}

export function recordPath(stateDir: string, name: string): string {
  return join(attachmentsDir(stateDir), `${name}.json`);
}

export async function writeRecord(stateDir: string, rec: AttachmentRecord): Promise<void> {
  const dir = attachmentsDir(stateDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = recordPath(stateDir, rec.name);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(rec, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, file);
}

export async function removeRecord(stateDir: string, name: string): Promise<void> {
  try {
    await unlink(recordPath(stateDir, name));
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}

function isRecord(v: unknown): v is AttachmentRecord {
  const r = v as Partial<AttachmentRecord> | null;
  return !!r && typeof r === 'object' && typeof r.name === 'string' && (r.method === 'nbd' || r.method === 'fuse')
    && typeof r.socket === 'string';
}

/** Every readable record; unreadable or malformed files are returned as `bad` (path + why). */
export async function readRecords(stateDir: string): Promise<{ records: AttachmentRecord[]; bad: { file: string; why: string }[] }> {
  const dir = attachmentsDir(stateDir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { records: [], bad: [] };
    throw err;
  }
  const records: AttachmentRecord[] = [];
  const bad: { file: string; why: string }[] = [];
  for (const n of names.sort()) {
    const file = join(dir, n);
    if (n.endsWith('.tmp')) {
      await unlink(file).catch(() => {});
      continue;
    }
    if (!n.endsWith('.json')) continue;
    try {
      const v: unknown = JSON.parse(await readFile(file, 'utf8'));
      if (!isRecord(v)) throw new Error('not an attachment record');
      records.push({
        name: v.name, method: v.method, device: v.device ?? null, mountDir: v.mountDir ?? null,
        helperPid: typeof v.helperPid === 'number' ? v.helperPid : null, socket: v.socket,
        enginePid: typeof v.enginePid === 'number' ? v.enginePid : 0, createdAt: typeof v.createdAt === 'number' ? v.createdAt : 0,
      });
    } catch (err) {
      bad.push({ file, why: (err as Error).message });
    }
  }
  return { records, bad };
}
