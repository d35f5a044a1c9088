// Worker side of the crypto pool: seals and opens frames off the main thread, reading the input
// and writing the output where they are (SharedArrayBuffer views, see crypto-pool.ts).
import { parentPort } from 'node:worker_threads';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { nativeCipher } from '../protocol/native-cipher.js';
import { openInto, sealInto, suiteByName, type Suite } from '../protocol/suites.js';
import type { CryptoJob, CryptoResult } from './crypto-pool.js';

// Without the native cipher, every cipher.update() leaves a short-lived buffer behind, and V8
// collects those only once ~64 MiB of them are outstanding: per worker that was ~50 MiB of garbage
// held at all times (the aes-gcm engines peaked at 200–245 MiB RSS). A young-generation collection
// every GC_EVERY bytes of frames frees them while they are few; it costs ~1 % of the worker's time
// (bench/README.md). The flag only makes gc() reachable from a fresh context; nothing else changes
// for the isolate. Without it (a V8 that refuses the flag) the worker simply runs as before. The
// native cipher writes in place and leaves nothing to collect.
const GC_EVERY = 4 * 1024 * 1024;
function exposeGc(): ((o: { type: 'minor' | 'major' }) => void) | null {
  setFlagsFromString('--expose-gc');
  return runInNewContext('typeof gc === "function" ? gc : null') as ((o: { type: 'minor' | 'major' }) => void) | null;
}
const gc = nativeCipher === null ? exposeGc() : null;
let sinceGc = 0;
// glibc gives freed heap memory back to the kernel once more than trim_threshold (128 KiB) is
// free at the top of an arena, so every batch of collected temporaries was handed back and its
// pages faulted in (and zeroed) again: 13–29 % of all CPU in an aes-gcm run. Freeing one mmapped
// 16 MiB block raises glibc's dynamic thresholds (mmap 16 MiB, trim 32 MiB) for the process,
// which ends that churn; what stays mapped is bounded by the collections above.
if (gc !== null) {
  Buffer.allocUnsafeSlow(16 * 1024 * 1024); // unreachable at once: the collection munmaps it
  gc({ type: 'major' });
}

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
  sinceGc += job.input.byteLength;
  if (gc !== null && sinceGc >= GC_EVERY) {
    sinceGc = 0;
    gc({ type: 'minor' });
  }
});
