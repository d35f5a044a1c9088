// The one chokepoint every IO request passes before the backend (style.md §1 rule 2). The export
// never trusts the client: op, flags, permission, length and range are all checked here, and the
// errno is picked on purpose (nbdkit protocol.c): out of range → ENOSPC for WRITE/WRITE_ZEROES,
// EINVAL otherwise.
import { Access, KNOWN_FLAGS, Op, ZERO_FLAGS, opName, type FrameHeader } from '../../protocol/wire.js';

export interface ValidateEnv {
  /** effective export size in bytes */
  size: number;
  /** largest READ/WRITE/DIGEST length accepted */
  maxRequest: number;
  /** Access bits in force right now: HELLO grant ∩ current ACL entry ∩ read-only */
  access: number;
  /** the connection's mirror claim was overtaken by a newer session: it may read, not write */
  overtaken: boolean;
}

export type Verdict =
  | { ok: true }
  /** answer IO_RESPONSE with this errno; the connection stays */
  | { ok: false; close: false; errno: string; reason: string }
  /** a framing violation: log the reason and close the connection */
  | { ok: false; close: true; errno: null; reason: string };

const OK: Verdict = { ok: true };

const refuse = (errno: string, reason: string): Verdict => ({ ok: false, close: false, errno, reason });
const close = (reason: string): Verdict => ({ ok: false, close: true, errno: null, reason });

/** Access a request needs: reads (and digests, block status) need r, anything that changes data needs w, FLUSH needs either. */
export function accessNeeded(op: Op): number {
  switch (op) {
    case Op.READ:
    case Op.DIGEST:
    case Op.BLOCK_STATUS: return Access.READ;
    case Op.WRITE:
    case Op.TRIM:
    case Op.WRITE_ZEROES: return Access.WRITE;
    default: return Access.READ | Access.WRITE;
  }
}

const KNOWN_OPS = new Set<number>([Op.READ, Op.WRITE, Op.FLUSH, Op.TRIM, Op.WRITE_ZEROES, Op.BLOCK_STATUS, Op.DIGEST]);

/** Check one IO frame's header. `h.payloadLength` is what actually came with it. */
export function validateIo(h: FrameHeader, env: ValidateEnv): Verdict {
  const op = h.op;
  const name = opName(op);
  // Unknown op: a well-framed request we cannot run; its payload was already consumed.
  if (!KNOWN_OPS.has(op)) return refuse('EINVAL', `unknown op ${op}`);
  // Payload must match the op: the stream itself is intact (payloadLength framed it), but a peer
  // that sends a WRITE with the wrong payload is broken; don't guess what it meant.
  if (op === Op.WRITE) {
    if (h.payloadLength !== h.length) {
      return close(`bad frame: WRITE of length ${h.length} carries ${h.payloadLength} payload bytes`);
    }
  } else if (h.payloadLength !== 0) {
    return close(`bad frame: ${name} carries ${h.payloadLength} payload bytes`);
  }
  if ((h.flags & ~KNOWN_FLAGS) !== 0) {
    return refuse('EINVAL', `${name}: unknown flags 0x${(h.flags & ~KNOWN_FLAGS).toString(16)}`);
  }
  if (op !== Op.WRITE_ZEROES && (h.flags & ZERO_FLAGS) !== 0) {
    return refuse('EINVAL', `${name}: flags 0x${(h.flags & ZERO_FLAGS).toString(16)} belong to WRITE_ZEROES only`);
  }
  const need = accessNeeded(op);
  if ((env.access & need) === 0) {
    return refuse('EPERM', env.access === 0
      ? `${name}: access revoked`
      : `${name}: needs ${need === Access.WRITE ? 'write' : 'read'} access`);
  }
  if (env.overtaken && need === Access.WRITE) return refuse('EPERM', `${name}: taken-over: the mirror has a newer session`);
  // A DIGEST is bounded like a READ: its length is the bytes the export reads for it.
  if (op === Op.BLOCK_STATUS && h.length === 0) return refuse('EINVAL', `${name}: zero length`);
  if (op === Op.READ || op === Op.WRITE || op === Op.DIGEST) {
    if (h.length === 0) return refuse('EINVAL', `${name}: zero length`);
    if (h.length > env.maxRequest) return refuse('EINVAL', `${name}: length ${h.length} exceeds max request ${env.maxRequest}`);
  }
  // Range: written without offset + length to stay exact near 2^53.
  if (h.offset > env.size || h.length > env.size - h.offset) {
    const errno = op === Op.WRITE || op === Op.WRITE_ZEROES ? 'ENOSPC' : 'EINVAL';
    return refuse(errno, `${name}: offset ${h.offset} + length ${h.length} is beyond the export size ${env.size}`);
  }
  return OK;
}
