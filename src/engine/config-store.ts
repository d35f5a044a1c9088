// The engine's config file kept true to what runs (issue 12, DESIGN §12). With autosave, every
// change that alters what `dst config show` prints is saved before its reply goes out:
//   - a change that grants or starts something is saved first and then applied; if applying
//     fails, the previous file is written back;
//   - a change that revokes or stops something is applied first, even when the save then fails
//     (access must never come back because a disk was full); the command then fails saying so.
// Changes and their saves run one at a time. Saves are atomic (tmp file in the same directory,
// fsync, rename, fsync of the directory), so a crash leaves the old or the new file, never a torn
// one. The store keeps the SHA-256 of the bytes it last loaded or wrote and refuses to overwrite a
// file changed behind its back.
import { createHash } from 'node:crypto';
import { readFile, unlink } from 'node:fs/promises';
import { writeFileAtomic, type SaveFault } from './atomic-file.js';
import { bare } from './config.js';
import { DstError, errnoOf } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { NodeConfig } from './types.js';

/** How the registry runs a change that alters what `config show` prints. */
export interface ChangeGate {
  /** save first (`preview` = the nodes as they will be), then apply; the old file is restored if applying fails */
  grant<T>(op: string, preview: () => NodeConfig[], apply: () => Promise<T>): Promise<T>;
  /** apply, then save; a failed save fails the command after the change took effect */
  revoke<T>(op: string, apply: () => Promise<T>): Promise<T>;
}

/** No config file to keep (unit tests, --no-config): changes just apply. */
export const DIRECT_GATE: ChangeGate = {
  grant: (_op, _preview, apply) => apply(),
  revoke: (_op, apply) => apply(),
};

/** The DST_TEST_SAVE_CRASH test hook (see SaveFault), read once when the engine starts. */
export function saveFaultFromEnv(env: NodeJS.ProcessEnv = process.env): SaveFault {
  const v = env.DST_TEST_SAVE_CRASH;
  if (v === undefined || v === '') return null;
  if (v !== 'before-rename') throw new DstError('DST_ERR_INVALID', `invalid DST_TEST_SAVE_CRASH ${JSON.stringify(v)}: expected before-rename`);
  return v;
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');
const hashOrNull = (text: string | null): string | null => (text === null ? null : sha256(text));

/** The bytes of `file`, or null when it does not exist. */
async function readOrNull(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
}

/** What the file holds as far as the store knows. */
interface Saved {
  /** the file's bytes (to restore them); null = no file */
  bytes: string | null;
  /** their SHA-256 (null = no file): a file with other bytes was changed behind our back */
  hash: string | null;
  /** what those bytes configure, as `render` prints it (to tell whether what runs is saved) */
  rendered: string;
}

export interface ConfigStoreOptions {
  /** the engine's config file (absolute) */
  file: string;
  autosave: boolean;
  /** the bytes loaded at engine start (null: the default file did not exist) */
  loaded: string | null;
  /** the nodes as they run now */
  current: () => NodeConfig[];
  /** the file text for a node list ([engine] keys as the file had them) */
  render: (nodes: NodeConfig[]) => string;
  log: Logger;
  fault?: SaveFault;
}

export interface ConfigStatus {
  file: string | null;
  autosave: boolean;
  /** what runs differs from what the file holds */
  unsaved: boolean;
}

export class ConfigStore implements ChangeGate {
  private tail: Promise<unknown> = Promise.resolve();
  private saved: Saved;

  /** Call once the loaded nodes are in the registry: they are what the file holds. */
  constructor(private readonly opts: ConfigStoreOptions) {
    this.saved = { bytes: opts.loaded, hash: hashOrNull(opts.loaded), rendered: opts.render(opts.current()) };
  }

  get file(): string {
    return this.opts.file;
  }

  status(): ConfigStatus {
    return { file: this.opts.file, autosave: this.opts.autosave, unsaved: this.opts.render(this.opts.current()) !== this.saved.rendered };
  }

  /** Run `fn` after every change queued before it (changes and saves are serialised). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => {});
    return run;
  }

  grant<T>(op: string, preview: () => NodeConfig[], apply: () => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      if (!this.opts.autosave) return apply();
      const before = this.saved;
      let wrote: boolean;
      try {
        wrote = await this.write(op, this.opts.render(preview()), false);
      } catch (err) {
        throw new DstError((err as DstError).code ?? 'DST_ERR_IO', `${op}: not done: ${bare(err, op)}`, { errno: errnoOf(err), cause: err });
      }
      let result: T;
      try {
        result = await apply();
      } catch (err) {
        if (wrote) await this.restore(op, before);
        throw err;
      }
      await this.saveApplied(op);
      return result;
    });
  }

  revoke<T>(op: string, apply: () => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      let result: T;
      try {
        result = await apply();
      } catch (err) {
        // a refused change changed nothing; a half-done one is still recorded if possible
        if (this.opts.autosave) await this.saveApplied(op).catch(() => {});
        throw err;
      }
      if (this.opts.autosave) await this.saveApplied(op);
      return result;
    });
  }

  /**
   * Save what runs now when it differs from the file (after a change took effect, or after the
   * engine started its nodes and learned their ports). A failure says the change was applied.
   */
  private async saveApplied(op: string): Promise<void> {
    try {
      await this.write(op, this.opts.render(this.opts.current()), false);
    } catch (err) {
      this.opts.log.error(`applied but not saved: ${bare(err, op)}`, { op, errno: errnoOf(err) });
      throw new DstError((err as DstError).code ?? 'DST_ERR_IO',
        `${op}: applied but NOT saved to ${this.opts.file}: ${bare(err, op)}; dst status shows config.unsaved until a later save succeeds`,
        { errno: errnoOf(err), cause: err });
    }
  }

  /** Engine start: record what starting the nodes changed (an export's bound port). Failures are logged. */
  settle(op: string): Promise<void> {
    return this.exclusive(async () => {
      if (!this.opts.autosave) return;
      await this.saveApplied(op).catch(() => {});
    });
  }

  /** config save to the engine's own file; `force` overwrites a file changed behind the engine's back. */
  async saveNow(op: string, force: boolean): Promise<void> {
    await this.exclusive(() => this.write(op, this.opts.render(this.opts.current()), force, true));
  }

  /** Write `text` unless the file already holds it (false); refuse a file changed behind our back. */
  private async write(op: string, text: string, force: boolean, always = false): Promise<boolean> {
    if (!always && text === this.saved.rendered) return false;
    const file = this.opts.file;
    if (!force && this.opts.autosave) await this.checkUnchanged(op);
    await writeFileAtomic(file, text, { where: op, fault: this.opts.fault ?? null });
    this.saved = { bytes: text, hash: sha256(text), rendered: text };
    this.opts.log.debug(`saved ${file}`, { op });
    return true;
  }

  private async checkUnchanged(op: string): Promise<void> {
    const file = this.opts.file;
    let now: string | null;
    try {
      now = await readOrNull(file);
    } catch (err) {
      throw new DstError('DST_ERR_IO', `${op}: cannot read ${file} to check it: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
    }
    if (hashOrNull(now) === this.saved.hash) return;
    throw new DstError('DST_ERR_CONFIG',
      `${op}: ${file} was changed since the engine last loaded or wrote it; not overwriting it. ` +
      'Either restart the engine (the file wins) or run dst config save --force (the running state wins)', { errno: 'ESTALE' });
  }

  /** After a failed grant: put the previous bytes back (no file → remove it). */
  private async restore(op: string, before: Saved): Promise<void> {
    const file = this.opts.file;
    try {
      if (before.bytes === null) await unlink(file);
      else await writeFileAtomic(file, before.bytes, { where: op });
      this.saved = before;
    } catch (err) {
      this.opts.log.error(`cannot restore ${file} after a failed change: ${(err as Error).message}`, { op, errno: errnoOf(err) });
    }
  }
}
