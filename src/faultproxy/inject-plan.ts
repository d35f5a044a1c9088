// What `inject` writes: reads the source (a Buffer, a capture file or any file, bounded by
// MAX_INJECT_BYTES) and turns it into the chunks to queue per direction. File I/O only; the proxy
// queues the chunks on its connections.
import { readFile, stat } from 'node:fs/promises';
import { DstError } from '../util/errors.js';
import { isCapture, parseCapture, type Direction } from './capture.js';
import type { DirSpec } from './rules.js';

/** Largest file `inject` reads. */
export const MAX_INJECT_BYTES = 64 * 1024 * 1024;

export interface InjectChunk {
  dir: Direction;
  data: Buffer;
}

async function readSource(source: string): Promise<Buffer> {
  try {
    const st = await stat(source);
    if (!st.isFile()) throw new DstError('DST_ERR_INVALID', `inject: ${source} is not a regular file`);
    if (st.size > MAX_INJECT_BYTES) {
      throw new DstError('DST_ERR_INVALID', `inject: ${source} is ${st.size} bytes; at most ${MAX_INJECT_BYTES} may be injected`);
    }
    return await readFile(source);
  } catch (err) {
    if (err instanceof DstError) throw err;
    const code = (err as { code?: string }).code ?? null;
    throw new DstError(code === 'ENOENT' ? 'DST_ERR_NOT_FOUND' : 'DST_ERR_IO',
      `inject: cannot read ${source}: ${(err as Error).message}`, { cause: err, errno: code });
  }
}

/**
 * The chunks to inject, in order. A capture file gives its recorded chunks (with dir up/down only
 * that direction's, with both each in its own; `fromConnection` keeps one captured connection's);
 * anything else is one chunk (with both: one per direction). `what` names the source in logs.
 */
export async function injectPlan(source: string | Buffer, dir: DirSpec, fromConnection: number | undefined): Promise<{ plan: InjectChunk[]; what: string }> {
  let buf: Buffer;
  if (typeof source === 'string') {
    buf = await readSource(source);
  } else {
    if (source.length > MAX_INJECT_BYTES) throw new DstError('DST_ERR_INVALID', `inject: at most ${MAX_INJECT_BYTES} bytes`);
    buf = source;
  }
  const what = typeof source === 'string' ? source : 'buffer';
  const plan: InjectChunk[] = [];
  if (isCapture(buf)) {
    for (const r of parseCapture(buf, what)) {
      if (fromConnection !== undefined && r.connection !== fromConnection) continue;
      if (dir === 'both' || r.direction === dir) plan.push({ dir: r.direction, data: r.data });
    }
  } else {
    for (const d of dir === 'both' ? (['up', 'down'] as const) : [dir]) plan.push({ dir: d, data: buf });
  }
  return { plan, what };
}
