// One error type for the whole project: a stable machine code, an errno where one applies,
// and a message that names the operation and the node. Only src/cli.ts turns these into exit codes.
import { constants as osConstants } from 'node:os';

export type DstErrorCode =
  | 'DST_ERR_USAGE'            // bad CLI syntax (exit 2)
  | 'DST_ERR_INVALID'          // a value the engine refuses (exit 1)
  | 'DST_ERR_NOT_FOUND'        // unknown node, missing file
  | 'DST_ERR_EXISTS'           // duplicate name
  | 'DST_ERR_STATE'            // command not allowed in the node's state
  | 'DST_ERR_BUSY'             // port in use, attached and mounted
  | 'DST_ERR_NO_ENGINE'        // no engine reachable on the control socket (exit 3)
  | 'DST_ERR_VERSION'          // CLI/engine version mismatch
  | 'DST_ERR_CONFIG'           // malformed config file
  | 'DST_ERR_BAD_FRAME'        // malformed control/wire/NBD frame
  | 'DST_ERR_MAC'              // authentication tag mismatch
  | 'DST_ERR_AUTH'             // authentication failed / suite mismatch
  | 'DST_ERR_DENIED'           // ACL refused
  | 'DST_ERR_TIMEOUT'          // deadline passed
  | 'DST_ERR_CONN_LOST'        // connection lost
  | 'DST_ERR_CLOSED'           // object already closed/destroyed
  | 'DST_ERR_IO'               // backend I/O error
  | 'DST_ERR_IDENTITY'         // export identity changed / size shrank
  | 'DST_ERR_MISMATCH'         // a mirror's legs differ (node verify left a region unrepaired)
  | 'DST_ERR_INTERNAL';

export interface DstErrorOptions {
  errno?: string | null;
  cause?: unknown;
}

export class DstError extends Error {
  readonly code: DstErrorCode;
  readonly errno: string | null;

  constructor(code: DstErrorCode, message: string, options: DstErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DstError';
    this.code = code;
    this.errno = options.errno ?? null;
  }

  toJSON(): { code: DstErrorCode; errno: string | null; message: string } {
    return { code: this.code, errno: this.errno, message: this.message };
  }
}

/**
 * Linux errnos dst uses that Node's os.constants.errno lacks (libuv has no code for them). Without
 * ESHUTDOWN here, "the call never ran, the node is stopping" went on the wire as EIO.
 */
const EXTRA_ERRNO: Readonly<Record<string, number>> = { ESHUTDOWN: 108 };
const ERRNO: Readonly<Record<string, number>> = { ...(osConstants.errno as Record<string, number>), ...EXTRA_ERRNO };

/** Numeric errno (positive) for a symbolic name, e.g. 'EIO' → 5. Unknown → EIO. */
export function errnoNumber(name: string): number {
  return ERRNO[name] ?? osConstants.errno.EIO;
}

/** Symbolic errno name for a positive number, e.g. 5 → 'EIO'. Unknown → `E<n>`. */
export function errnoName(n: number): string {
  for (const [name, value] of Object.entries(ERRNO)) if (value === n) return name;
  return `E${n}`;
}

/** The errno carried by any thrown value (Node system errors carry `code` = 'ENOENT' etc.). */
export function errnoOf(err: unknown): string | null {
  if (err instanceof DstError) return err.errno;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : null;
}

export function isDstError(err: unknown, code?: DstErrorCode): err is DstError {
  return err instanceof DstError && (code === undefined || err.code === code);
}
