// One engine-wide pool of worker threads for sealing and opening large frames (DESIGN §9).
// Frames under SMALL_FRAME bytes are done on the main thread: a round trip to a worker costs
// more than the cipher itself there. Callers assign sequence numbers before calling and write
// frames in that order, so out-of-order completion here never reorders the wire.
//
// No frame is copied on its way to a worker or back: the input and the output are views of
// SharedArrayBuffers (payload-pool buffers are; any other input is copied into one first), which
// postMessage shares. The worker writes the sealed or opened bytes straight into the output buffer
// the pool lent for it and answers with the tag or the length only. Until a job settles the worker
// reads its input, so the caller keeps the input untouched until the promise settles.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { DstError } from '../util/errors.js';
import { allocPayload, releasePayload } from './io/payload-pool.js';
import { open, seal, sealedLength, suiteByName, type DirectionKeys, type Sealed, type Suite } from '../protocol/suites.js';

export const SMALL_FRAME = 64 * 1024;

export interface CryptoJob {
  id: number;
  kind: 'seal' | 'open';
  suite: string;
  enc: Uint8Array;
  mac: Uint8Array;
  seq: number;
  header: Uint8Array;
  /** SharedArrayBuffer view: the plaintext to seal or the payload to open */
  input: Uint8Array;
  /** SharedArrayBuffer view the result is written to; null for suites without a cipher */
  output: Uint8Array | null;
  /** the received tag (open) */
  tag: Uint8Array | null;
}

export interface CryptoResult {
  id: number;
  /** bytes written to the output (open: plaintext length) */
  length: number;
  /** the tag (seal) */
  tag: Uint8Array | null;
  error: { code: string; message: string } | null;
}

/** A SharedArrayBuffer view of `b` for a worker: b itself, or a pooled copy (given back later). */
function shareable(b: Buffer): { view: Buffer; copy: Buffer | null } {
  if (b.buffer instanceof SharedArrayBuffer) return { view: b, copy: null };
  const copy = allocPayload(b.length);
  if (!(copy.buffer instanceof SharedArrayBuffer)) throw new DstError('DST_ERR_INTERNAL', `crypto pool: a ${b.length}-byte frame is below the payload pool`);
  b.copy(copy);
  return { view: copy, copy };
}

/** Small fields travel as compact copies: cloning a view clones its whole underlying buffer. */
const own = (b: Buffer): Uint8Array => new Uint8Array(b);

interface Pending {
  resolve: (r: CryptoResult) => void;
  worker: Worker;
}

export class CryptoPool {
  private workers: Worker[] = [];
  private load = new Map<Worker, number>();
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(private size: number = availableParallelism()) {}

  get threads(): number {
    return this.size;
  }

  /** Grow to at least n threads (the largest `threads` of any node). Never shrinks while running. */
  ensure(n: number): void {
    this.size = Math.max(this.size, n);
  }

  private pick(): Worker {
    if (this.workers.length < this.size) {
      const w = new Worker(new URL('./crypto-worker.js', import.meta.url));
      w.unref();
      w.on('message', (r: CryptoResult) => this.settle(r));
      w.on('error', (err) => this.failWorker(w, err));
      this.workers.push(w);
      this.load.set(w, 0);
      return w;
    }
    let best = this.workers[0]!;
    for (const w of this.workers) if (this.load.get(w)! < this.load.get(best)!) best = w;
    return best;
  }

  private settle(r: CryptoResult): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    this.load.set(p.worker, this.load.get(p.worker)! - 1);
    p.resolve(r);
  }

  private failWorker(w: Worker, err: Error): void {
    for (const [id, p] of this.pending) {
      if (p.worker === w) this.settle({ id, length: 0, tag: null, error: { code: 'DST_ERR_INTERNAL', message: `crypto worker died: ${err.message}` } });
    }
    this.workers = this.workers.filter((x) => x !== w);
    this.load.delete(w);
  }

  private async run(job: Omit<CryptoJob, 'id' | 'input' | 'output'>, input: Buffer, outputLength: number | null): Promise<{ output: Buffer | null; result: CryptoResult }> {
    if (this.closed) throw new DstError('DST_ERR_CLOSED', 'crypto pool is closed');
    const { view, copy } = shareable(input);
    const output = outputLength === null ? null : allocPayload(outputLength);
    const id = this.nextId++;
    const worker = this.pick();
    this.load.set(worker, this.load.get(worker)! + 1);
    const result = await new Promise<CryptoResult>((resolve) => {
      this.pending.set(id, { resolve, worker });
      worker.postMessage({ ...job, id, input: view, output });
    });
    releasePayload(copy);
    if (result.error) releasePayload(output);
    return { output, result };
  }

  /**
   * Seal in a worker (inline under SMALL_FRAME). The sealed payload of a pooled job is a
   * payload-pool buffer: give it back with releasePayload() once written.
   */
  async seal(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, plain: Buffer): Promise<Sealed> {
    if (plain.length < SMALL_FRAME) return seal(suite, keys, seq, header, plain);
    const { output, result } = await this.run(
      { kind: 'seal', suite: suite.name, enc: own(keys.enc), mac: own(keys.mac), seq, header: own(header), tag: null },
      plain, suite.cipher === 'none' ? null : sealedLength(suite, plain.length),
    );
    if (result.error) throw new DstError(result.error.code as 'DST_ERR_INTERNAL', result.error.message);
    return { payload: output ?? plain, tag: Buffer.from(result.tag!) };
  }

  /** Open in a worker (inline under SMALL_FRAME). The plaintext of a pooled job is a payload-pool buffer. */
  async open(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, payload: Buffer, tag: Buffer): Promise<Buffer> {
    if (payload.length < SMALL_FRAME) return open(suite, keys, seq, header, payload, tag);
    const { output, result } = await this.run(
      { kind: 'open', suite: suite.name, enc: own(keys.enc), mac: own(keys.mac), seq, header: own(header), tag: own(tag) },
      payload, suite.cipher === 'none' ? null : payload.length,
    );
    if (result.error) throw new DstError(result.error.code as 'DST_ERR_MAC', result.error.message, { errno: result.error.code === 'DST_ERR_MAC' ? 'EBADMSG' : null });
    return output === null ? payload : output.subarray(0, result.length);
  }

  /** Seconds the workers have been busy (their event-loop active time), for the metrics endpoint. */
  busySeconds(): number {
    let ms = 0;
    for (const w of this.workers) ms += w.performance.eventLoopUtilization().active;
    return ms / 1000;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const [id] of this.pending) this.settle({ id, length: 0, tag: null, error: { code: 'DST_ERR_CLOSED', message: 'crypto pool closed' } });
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}

/** Resolve a suite by name (re-exported for callers that only hold the pool). */
export { suiteByName };
