// Worker side of the crypto pool: seals and opens frames off the main thread, reading the input
// and writing the output where they are (SharedArrayBuffer views, see crypto-pool.ts).
import { parentPort } from 'node:worker_threads';
import { openInto, sealInto, suiteByName, type Suite } from '../protocol/suites.js';
import type { CryptoJob, CryptoResult } from './crypto-pool.js';
import { frameGarbageCollector } from './heap.js';

// Without the native cipher, young collections as frames go by keep node:crypto's garbage small (heap.ts).
const collect = frameGarbageCollector();

const EMPTY = Buffer.alloc(0);
const suites = new Map<string, Suite>();
const view = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

function run(job: CryptoJob): CryptoResult {
  try {
    let suite = suites.get(job.suite);
    if (suite === undefined) suites.set(job.suite, suite = suiteByName(job.suite));
    const keys = { enc: view(job.enc), mac: view(job.mac) };
    const header = view(job.header);
    const input = view(job.input);
    const output = job.output === null ? EMPTY : view(job.output);
    if (job.kind === 'seal') {
      const tag = sealInto(suite, keys, job.seq, header, input, output);
      return { id: job.id, length: output.length, tag: new Uint8Array(tag), error: null };
    }
    const length = openInto(suite, keys, job.seq, header, input, view(job.tag!), output);
    return { id: job.id, length, tag: null, error: null };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { id: job.id, length: 0, tag: null, error: { code: e.code ?? 'DST_ERR_INTERNAL', message: e.message ?? String(err) } };
  }
}

parentPort!.on('message', (job: CryptoJob) => {
  parentPort!.postMessage(run(job));
  collect?.(job.input.byteLength);
});
