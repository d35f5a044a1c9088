// Reading an accepted socket into buffers we choose: the one place that moves a socket's
// `_handle` (a Node internal) into a new net.Socket with `onread`.
import net from 'node:net';

/**
 * Move an accepted (paused) socket's handle into a new net.Socket that reads with `onread`: into
 * the buffer `buffer()` returns (a reused scratch buffer, or straight into the WRITE payload
 * being assembled), handing each read to `callback` synchronously. net.Server offers no
 * `onread` for accepted sockets, and without it Node allocates a fresh 64 KiB buffer for every
 * read: at 1 GB/s of writes that garbage alone forces a full mark-compact every few dozen
 * milliseconds, about a third of the engine's CPU (bench/README.md).
 *
 * This relies on net.Socket's `handle` option and `_handle` property (Node internals, used by
 * net.Server and child_process themselves). Anything unexpected → null, and the caller keeps
 * the accepted socket as it is ('data' events). The accepted socket, now handle-less, is
 * destroyed when the adopted one closes, so the server's connection count stays right.
 */
/** Sockets adopted, and sockets left with Node's own read buffers because adoption was not possible. */
const counts = { adopted: 0, fallback: 0 };

/** For `dst status`: whether socket reads land in our buffers on this Node. */
export function socketReadsText(): string {
  const { adopted, fallback } = counts;
  if (adopted === 0 && fallback === 0) return 'user buffers (onread adoption): no connection yet';
  const mode = fallback === 0 ? 'user buffers (onread adoption)' : adopted === 0 ? "Node's buffers (adoption failed)" : 'mixed';
  return `${mode}: ${adopted} adopted, ${fallback} not`;
}

export function adoptWithUserBuffer(accepted: net.Socket, buffer: () => Buffer,
  callback: (n: number, buf: Buffer) => void): net.Socket | null {
  const inner = accepted as unknown as { _handle?: { readStart?: unknown } | null };
  const handle = inner._handle;
  if (!handle || typeof handle.readStart !== 'function' || accepted.readableFlowing === true) {
    counts.fallback++;
    return null;
  }
  let adopted: net.Socket;
  try {
    inner._handle = null;
    adopted = new net.Socket({
      handle, readable: true, writable: true, allowHalfOpen: accepted.allowHalfOpen,
      onread: { buffer, callback: (n: number, buf: Uint8Array) => { callback(n, buf as Buffer); return true; } },
    } as net.SocketConstructorOpts);
  } catch {
    inner._handle = handle;
    counts.fallback++;
    return null;
  }
  counts.adopted++;
  adopted.once('close', () => accepted.destroy());
  return adopted;
}
