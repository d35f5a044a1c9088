// Worker side of the crypto pool: seals and opens frames off the main thread.
import { parentPort } from 'node:worker_threads';
import { open, seal, suiteByName } from '../protocol/suites.js';
import type { CryptoJob, CryptoResult } from './crypto-pool.js';

parentPort!.on('message', (job: CryptoJob) => {
  let result: CryptoResult;
  try {
    const suite = suiteByName(job.suite);
    const keys = { enc: Buffer.from(job.enc), mac: Buffer.from(job.mac) };
    const header = Buffer.from(job.header);
    const data = Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength);
    if (job.kind === 'seal') {
      const s = seal(suite, keys, job.seq, header, data);
      result = { id: job.id, payload: s.payload, tag: s.tag, error: null };
    } else {
      const plain = open(suite, keys, job.seq, header, data, Buffer.from(job.tag!));
      result = { id: job.id, payload: plain, tag: null, error: null };
    }
  } catch (err) {
    const e = err as { code?: string; message?: string };
    result = { id: job.id, payload: null, tag: null, error: { code: e.code ?? 'DST_ERR_INTERNAL', message: e.message ?? String(err) } };
  }
  parentPort!.postMessage(result);
});
