// One engine-wide pool of worker threads for sealing and opening large frames (DESIGN §9).
// Frames under SMALL_FRAME bytes are done on the main thread: a round trip to a worker costs
// more than the cipher itself there. Callers assign sequence numbers before calling and write
// frames in that order, so out-of-order completion here never reorders the wire.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { DstError } from '../util/errors.js';
import { open, seal, suiteByName, type DirectionKeys, type Sealed, type Suite } from '../protocol/suites.js';

export const SMALL_FRAME = 64 * 1024;

export interface CryptoJob {
  id: number;
  kind: 'seal' | 'open';
  suite: string;
  enc: Uint8Array;
  mac: Uint8Array;
  seq: number;
  header: Uint8Array;
  data: Uint8Array;
  tag: Uint8Array | null;
}

export interface CryptoResult {
  id: number;
  payload: Uint8Array | null;
  tag: Uint8Array | null;
  error: { code: string; message: string } | null;
}

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
      if (p.worker === w) this.settle({ id, payload: null, tag: null, error: { code: 'DST_ERR_INTERNAL', message: `crypto worker died: ${err.message}` } });
    }
    this.workers = this.workers.filter((x) => x !== w);
    this.load.delete(w);
  }

  private run(job: Omit<CryptoJob, 'id'>): Promise<CryptoResult> {
    if (this.closed) return Promise.reject(new DstError('DST_ERR_CLOSED', 'crypto pool is closed'));
    const id = this.nextId++;
    const worker = this.pick();
    this.load.set(worker, this.load.get(worker)! + 1);
    return new Promise((resolve) => {
      this.pending.set(id, { resolve, worker });
      worker.postMessage({ ...job, id });
    });
  }

  async seal(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, plain: Buffer): Promise<Sealed> {
    if (plain.length < SMALL_FRAME) return seal(suite, keys, seq, header, plain);
    const r = await this.run({ kind: 'seal', suite: suite.name, enc: keys.enc, mac: keys.mac, seq, header, data: plain, tag: null });
    if (r.error) throw new DstError(r.error.code as 'DST_ERR_INTERNAL', r.error.message);
    return { payload: Buffer.from(r.payload!.buffer, r.payload!.byteOffset, r.payload!.byteLength), tag: Buffer.from(r.tag!) };
  }

  async open(suite: Suite, keys: DirectionKeys, seq: number, header: Buffer, payload: Buffer, tag: Buffer): Promise<Buffer> {
    if (payload.length < SMALL_FRAME) return open(suite, keys, seq, header, payload, tag);
    const r = await this.run({ kind: 'open', suite: suite.name, enc: keys.enc, mac: keys.mac, seq, header, data: payload, tag });
    if (r.error) throw new DstError(r.error.code as 'DST_ERR_MAC', r.error.message, { errno: r.error.code === 'DST_ERR_MAC' ? 'EBADMSG' : null });
    return Buffer.from(r.payload!.buffer, r.payload!.byteOffset, r.payload!.byteLength);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const [id] of this.pending) this.settle({ id, payload: null, tag: null, error: { code: 'DST_ERR_CLOSED', message: 'crypto pool closed' } });
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}

/** Resolve a suite by name (re-exported for callers that only hold the pool). */
export { suiteByName };
