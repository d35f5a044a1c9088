// Feeds a byte stream to a decoder the way a socket reading into one reused buffer does
// (net.connect's `onread`): each read lands in dec.readTarget(scratch), at most its length, and
// stops at each cut; the scratch buffer is scribbled over after every read, so anything still
// pointing into it shows. After read i, pull() runs unless pulls[i] is false (an owner applying
// backpressure keeps reading ahead without pulling); it runs once more at the end.
export interface TransientDecoder {
  readTarget(scratch: Buffer): Buffer;
  feedTransient(chunk: Buffer): void;
}

export function feedLikeSocket(dec: TransientDecoder, stream: Buffer, cuts: number[], scratch: Buffer,
  pulls: boolean[], pull: () => void): void {
  let at = 0;
  let reads = 0;
  for (const end of [...cuts, stream.length]) {
    while (at < end) {
      const target = dec.readTarget(scratch);
      const n = Math.min(target.length, end - at);
      stream.copy(target, 0, at, at + n);
      at += n;
      dec.feedTransient(target.subarray(0, n));
      if (target === scratch) scratch.fill(0xee);
      if (pulls[reads++] !== false) pull();
    }
  }
  scratch.fill(0xdd);
  pull();
}
