// Mirror claims (one writer per mirror, dst-protocol(7) "Mirror claims"): per export node, the
// highest session seen for each mirror UUID, kept in the state dir as
// <stateDir>/exports/<name>.claims = {"identity": UUID, "claims": {MIRROR-UUID: "SESSION"}}.
// A HELLO whose claim is older than the highest is refused; a newer one is recorded durably before
// the handshake completes; a connection whose claim has been overtaken may no longer write (the
// check is validateIo's, fed by `overtaken`). Claims belong to the export's identity: a new
// identity (another disk) starts with none, so a mirror rebuilt on new disks is not refused.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../util/log.js';
import { DstError, errnoOf } from '../../util/errors.js';
import type { MirrorClaim } from '../../protocol/wire.js';
import { writeFileAtomic } from '../atomic-file.js';
import { uuidToBytes } from './identity.js';

/** A claim as a connection holds it: the map key computed once, so the per-request check is one lookup. */
export interface HeldClaim {
  /** the mirror UUID, 32 hex digits (the map key) */
  readonly key: string;
  readonly session: bigint;
}

export function claimsPath(stateDir: string, name: string): string {
  return join(stateDir, 'exports', `${name}.claims`);
}

export function holdClaim(c: MirrorClaim): HeldClaim {
  return { key: c.uuid.toString('hex'), session: c.session };
}

/** 8-4-4-4-12, as people read UUIDs. */
function uuidText(key: string): string {
  return `${key.slice(0, 8)}-${key.slice(8, 12)}-${key.slice(12, 16)}-${key.slice(16, 20)}-${key.slice(20)}`;
}

export class MirrorClaims {
  /** a save running (it wrote the map as it was when it started) */
  private writing: Promise<void> | null = null;
  /** the save queued behind it: every record made before it starts joins it */
  private queued: Promise<void> | null = null;
  /** the last save failed: the map holds claims that are not on disk */
  private unsaved = false;

  private constructor(private readonly path: string, private readonly name: string, private readonly identity: string,
    private readonly highest: Map<string, bigint>) {}

  /**
   * Load export `name`'s claims for `identity`. A missing file, or one of another identity, is no
   * claims; a file that cannot be read or parsed refuses the start naming it: starting with none
   * would let a fenced writer back in.
   */
  static async load(stateDir: string, name: string, identity: Buffer, log: Logger): Promise<MirrorClaims> {
    const path = claimsPath(stateDir, name);
    const id = uuidText(identity.toString('hex'));
    const claims = new Map<string, bigint>();
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return new MirrorClaims(path, name, id, claims);
      throw refuse(name, path, `cannot be read: ${(err as Error).message}`, err);
    }
    try {
      const stored = JSON.parse(text) as { identity?: unknown; claims?: unknown };
      if (typeof stored?.identity !== 'string' || typeof stored.claims !== 'object' || stored.claims === null) {
        throw new Error('no identity or claims');
      }
      if (stored.identity !== id) {
        log.info('mirror claims of another identity dropped', { op: 'claims', was: stored.identity });
        return new MirrorClaims(path, name, id, claims);
      }
      for (const [uuid, session] of Object.entries(stored.claims as Record<string, unknown>)) {
        if (typeof session !== 'string' || !/^\d{1,20}$/.test(session)) throw new Error(`bad session for mirror ${uuid}`);
        claims.set(uuidToBytes(uuid).toString('hex'), BigInt(session));
      }
    } catch (err) {
      throw refuse(name, path, `is damaged (${text.length} bytes: ${(err as Error).message})`, err);
    }
    return new MirrorClaims(path, name, id, claims);
  }

  /** Mirrors with a claim. */
  get size(): number {
    return this.highest.size;
  }

  /** A newer session of this claim's mirror has been recorded (its connection may not write). */
  overtaken(c: HeldClaim): boolean {
    const h = this.highest.get(c.key);
    return h !== undefined && c.session < h;
  }

  /** Why a HELLO with this claim is refused (older than the highest seen), or null. */
  refusal(c: HeldClaim): string | null {
    if (!this.overtaken(c)) return null;
    return `taken-over: mirror ${uuidText(c.key)} on export ${this.name} belongs to session ${this.highest.get(c.key)!},`
      + ` this HELLO offers session ${c.session}`;
  }

  /**
   * Take the claim: refused (the message) when it is older than the highest, else it becomes the
   * highest at once (older connections stop writing now) and the promise resolves once that is
   * on disk. A failed save rejects; the claim stays in memory (it only fences more, never less).
   */
  take(c: HeldClaim): { refused: string } | { saved: Promise<void> } {
    const refused = this.refusal(c);
    if (refused !== null) return { refused };
    // the same session again (a reconnect, a second leg connection): durable once the save that
    // wrote it is done, or saved again if that one failed
    if (this.highest.get(c.key) === c.session) return { saved: this.unsaved ? this.save() : this.queued ?? this.writing ?? Promise.resolve() };
    this.highest.set(c.key, c.session);
    return { saved: this.save() };
  }

  /** Coalesced: a save starting after this call writes what the map holds now. */
  private save(): Promise<void> {
    if (this.queued) return this.queued;
    const before = this.writing;
    const run = async (): Promise<void> => {
      if (before) await before.catch(() => {});
      this.queued = null;
      this.unsaved = false;
      const claims: Record<string, string> = {};
      for (const [key, session] of this.highest) claims[uuidText(key)] = session.toString();
      try {
        await writeFileAtomic(this.path, JSON.stringify({ identity: this.identity, claims }) + '\n',
          { where: `export ${this.name}: mirror claims` });
      } catch (err) {
        this.unsaved = true;
        throw err;
      }
    };
    const p = run();
    if (before) this.queued = p;
    this.writing = p;
    p.then(() => {}, () => {}).finally(() => { if (this.writing === p) this.writing = null; });
    return p;
  }
}

function refuse(name: string, path: string, why: string, err: unknown): DstError {
  return new DstError('DST_ERR_IDENTITY',
    `export ${name}: mirror claims file ${path} ${why}; restore it, or remove it to forget which remote node owns each mirror`
    + ' (a fenced one could then write again)',
    { errno: errnoOf(err) ?? 'EINVAL', cause: err });
}
