// A unix socket file left by a dead process is removed before listening; a live one, or a path
// that is not a socket, is refused. One rule for the control socket, the NBD sockets and the
// fault proxy's control socket, so none of them ever unlinks a socket somebody still serves on.
import { lstat, unlink } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { realClock, type Clock } from '../../util/clock.js';
import { DstError, errnoOf } from '../../util/errors.js';

/** How long a connect may hang before the socket counts as alive (accepted but silent). */
const PROBE_TIMEOUT_MS = 2000;

/** Does something accept connections on this unix socket? */
export function socketAnswers(path: string, timeoutMs = PROBE_TIMEOUT_MS, clock: Clock = realClock): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ path });
    const done = (alive: boolean): void => {
      timer.cancel();
      s.destroy();
      resolve(alive);
    };
    const timer = clock.setTimer(timeoutMs, () => done(true));
    s.once('connect', () => done(true));
    s.once('error', () => done(false)); // ECONNREFUSED: nobody listens
  });
}

/** Words for the messages. */
export interface SocketRole {
  /** what the socket is: "control socket", "NBD socket" */
  what: string;
  /** what a live one means, before its name: "another engine is running on" */
  live: string;
}

/** Before listening on `path`: remove a stale socket file; refuse a live socket and any other file. */
export async function removeStaleSocket(path: string, role: SocketRole): Promise<'absent' | 'removed'> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return 'absent';
    throw new DstError('DST_ERR_INVALID', `${role.what} ${path}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
  }
  if (!isSocket) {
    throw new DstError('DST_ERR_EXISTS', `${role.what} ${path} exists and is not a socket; refusing to replace it`, { errno: 'EEXIST' });
  }
  if (await socketAnswers(path)) {
    throw new DstError('DST_ERR_BUSY', `${role.live} ${role.what} ${path}`, { errno: 'EADDRINUSE' });
  }
  try {
    await unlink(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') {
      throw new DstError('DST_ERR_INVALID', `stale ${role.what} ${path}: cannot remove it: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
    }
  }
  return 'removed';
}
