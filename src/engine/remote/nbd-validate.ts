// The one chokepoint for NBD request validation (style §6): pure, no I/O, like export/validate.ts.
// Commands, flags, zero lengths, ranges and permissions are checked against the target; the
// export side re-checks authoritatively. The errno is picked on purpose (nbdkit protocol.c):
// past the end → ENOSPC for WRITE/WRITE_ZEROES, EINVAL otherwise.
//
// Decisions (where the spec leaves room):
// - Zero-length READ/WRITE → EINVAL (the spec calls them unspecified). Zero-length TRIM and
//   WRITE_ZEROES are an empty range: valid here (after the range check); the transmission loop
//   answers them without touching the target.
// - FLUSH ignores its offset/length (reserved; old kernels fill them in).
// - READ longer than MAX_PAYLOAD (the maximum we advertise) → EINVAL; WRITE longer → the
//   decoder refuses it before buffering and the connection is dropped (hard disconnect).
// - NBD_CMD_DISC never gets here (no reply to carry an error; its flags are ignored).
// - BLOCK_STATUS needs base:allocation selected (there is no other context to report) and read
//   access; zero length → EINVAL (the spec forbids it). FAST_ZERO only when it was advertised.
import type { BlockOp, BlockTarget } from './target.js';
import type { RequestMessage } from '../../protocol/nbd-decoder.js';
import { Cmd, CmdFlag, MAX_PAYLOAD, cmdName } from '../../protocol/nbd.js';

/** A request refused at the edge: answered with this errno, the connection is kept. */
export interface Refusal { errno: string; reason: string }

/** Block op per NBD command (indexed by command; undefined = unsupported). */
const OPS: readonly (BlockOp | undefined)[] = (() => {
  const t: (BlockOp | undefined)[] = [];
  t[Cmd.READ] = 'read'; t[Cmd.WRITE] = 'write'; t[Cmd.FLUSH] = 'flush'; t[Cmd.TRIM] = 'trim'; t[Cmd.WRITE_ZEROES] = 'write-zeroes';
  t[Cmd.BLOCK_STATUS] = 'block-status';
  return t;
})();
/** Command flags valid per command (DF is not advertised, so never valid). */
const ALLOWED_FLAGS: readonly number[] = (() => {
  const t: number[] = [];
  t[Cmd.READ] = CmdFlag.FUA; t[Cmd.WRITE] = CmdFlag.FUA; t[Cmd.FLUSH] = CmdFlag.FUA; t[Cmd.TRIM] = CmdFlag.FUA;
  t[Cmd.WRITE_ZEROES] = CmdFlag.FUA | CmdFlag.NO_HOLE | CmdFlag.FAST_ZERO; t[Cmd.BLOCK_STATUS] = CmdFlag.REQ_ONE;
  return t;
})();

/** The block op an NBD command runs; undefined for a command we do not serve. */
export function blockOpOf(type: number): BlockOp | undefined {
  return type < OPS.length ? OPS[type] : undefined;
}

/** What option negotiation agreed for one connection, as far as its requests depend on it. */
export interface Agreed {
  /** structured replies */
  structured: boolean;
  /** SEND_FAST_ZERO was in the transmission flags sent to the client */
  fastZero: boolean;
  /** the id base:allocation was selected under (NBD_OPT_SET_META_CONTEXT), or null */
  allocationContext: number | null;
}

const refuse = (errno: string, reason: string): Refusal => ({ errno, reason });

/**
 * Check one request against the target's size and permissions as they are now (a later grant
 * applies at once). null = run it.
 */
export function validateRequest(req: RequestMessage, target: Pick<BlockTarget, 'size' | 'permissions'>, agreed: Agreed): Refusal | null {
  const op = blockOpOf(req.type);
  if (op === undefined) return refuse('EINVAL', `unsupported command ${cmdName(req.type)}`);
  const allowed = ALLOWED_FLAGS[req.type] ?? 0;
  if ((req.flags & ~allowed) !== 0) return refuse('EINVAL', `invalid flags 0x${req.flags.toString(16)} for ${cmdName(req.type)}`);
  if ((req.flags & CmdFlag.FAST_ZERO) !== 0 && !agreed.fastZero) return refuse('EINVAL', `${cmdName(req.type)}: FAST_ZERO was not advertised`);
  if (op === 'block-status' && agreed.allocationContext === null) {
    return refuse('EINVAL', `${cmdName(req.type)} without the base:allocation meta context selected`);
  }
  if ((op === 'read' || op === 'write' || op === 'block-status') && req.length === 0) return refuse('EINVAL', `zero-length ${cmdName(req.type)}`);
  if (op === 'read' && req.length > MAX_PAYLOAD) {
    return refuse('EINVAL', `read of ${req.length} bytes exceeds the maximum payload ${MAX_PAYLOAD}`);
  }
  const perms = target.permissions();
  const writes = op === 'write' || op === 'trim' || op === 'write-zeroes';
  if (writes && !perms.includes('w')) return refuse('EPERM', 'the export is read-only');
  if ((op === 'read' || op === 'block-status') && !perms.includes('r')) return refuse('EPERM', 'the export is write-only');
  if (op !== 'flush') {
    const size = target.size();
    if (req.offset + req.length > size) {
      return refuse(op === 'write' || op === 'write-zeroes' ? 'ENOSPC' : 'EINVAL',
        `${cmdName(req.type)} ${req.offset}+${req.length} is past the end (${size})`);
    }
  }
  return null;
}
