// The export's DIGEST (issue 15, mirror healing): SHA-256 of a range of the disk, so a mirror can
// verify or resync a leg without moving the data. The range (up to max-request, 32 MiB) is read
// one piece at a time, so a digest holds at most DIGEST_PIECE bytes however long it is.
import { createHash } from 'node:crypto';
import { releasePayload } from '../io/payload-pool.js';
import type { Backend } from './backend.js';

/** Largest backend read one digest holds at a time. */
export const DIGEST_PIECE = 1024 * 1024;

/** SHA-256 (32 bytes) of the backend's bytes [offset, offset+length). Rejects with the backend's error. */
export async function digestRange(backend: Backend, offset: number, length: number): Promise<Buffer> {
  const hash = createHash('sha256');
  for (let done = 0; done < length; done += DIGEST_PIECE) {
    const piece = await backend.read(offset + done, Math.min(DIGEST_PIECE, length - done));
    hash.update(piece);
    releasePayload(piece); // hashed: nothing reads it again
  }
  return hash.digest();
}
