// Reassemble netlink messages from a unix STREAM socket. A datagram netlink socket delivers whole
// messages; a stream delivers bytes split anywhere, so we frame by nlmsg_len (first u32 of the
// header, host order). Every message we write is 4-byte aligned and its nlmsg_len covers its
// padding, so the framer steps by nlmsg_len exactly.
//
// Bounded: nlmsg_len is checked as soon as its 4 bytes arrive, so the buffer never holds more
// than one message of at most `maxMessage` bytes plus the rest of the last chunk received.
// nlmsg_len < 20 (nlmsghdr + genlmsghdr) or > maxMessage → DstError('DST_ERR_BAD_FRAME'), and
// the framer stays failed: the caller replies with an error and closes the connection.
import { readU32 } from 'netlink/dist/structs.js';
import { DEFAULT_LIMITS } from '../engine/types.js';
import { DstError } from '../util/errors.js';
import { NLMSG_MIN_LEN } from './codec.js';

export class NlFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failureErr: DstError | null = null;

  constructor(readonly maxMessage: number = DEFAULT_LIMITS.maxControlMessage) {}

  /** Bytes held for a message not yet complete. */
  get pending(): number {
    return this.buffered;
  }

  /** The first bytes of the message being assembled (up to 16, for an error reply's echo). */
  partialHeader(): Buffer {
    return this.peek(Math.min(16, this.buffered));
  }

  /** The framing error, once one was seen (the framer then accepts nothing more). */
  get failure(): DstError | null {
    return this.failureErr;
  }

  /**
   * Feed bytes; returns every message completed by them, each a Buffer of exactly nlmsg_len
   * bytes (copied: independent of the chunks). A bad nlmsg_len → DST_ERR_BAD_FRAME: thrown at
   * once when no message completed in this call; otherwise the messages before it are returned,
   * `failure` is set, and the next push throws. Callers check `failure` after each push.
   */
  push(chunk: Buffer): Buffer[] {
    if (this.failureErr) throw this.failureErr;
    if (chunk.length) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: Buffer[] = [];
    while (this.buffered >= 4) {
      const len = readU32.call(this.peek(4), 0);
      if (len < NLMSG_MIN_LEN || len > this.maxMessage) {
        this.failureErr = new DstError('DST_ERR_BAD_FRAME',
          len < NLMSG_MIN_LEN
            ? `control message too short: nlmsg_len ${len} < ${NLMSG_MIN_LEN} (nlmsghdr + genlmsghdr)`
            : `control message too large: nlmsg_len ${len} > ${this.maxMessage} bytes`,
          { errno: len < NLMSG_MIN_LEN ? 'EINVAL' : 'EMSGSIZE' });
        if (out.length) return out;
        throw this.failureErr;
      }
      if (this.buffered < len) break;
      out.push(this.take(len));
    }
    return out;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
    const b = Buffer.alloc(n);
    let off = 0;
    for (const c of this.chunks) {
      if (off >= n) break;
      off += c.copy(b, off, 0, Math.min(c.length, n - off));
    }
    return b;
  }

  private take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}
