// The local NBD server for one BlockTarget (a remote node's NBD socket, DESIGN §1/§8/§10): the
// listeners (a unix socket created 0600, and/or TCP), admission of accepted sockets, and the
// endpoint's life (graceful or forced close). Each accepted socket becomes an NbdConnection
// (nbd-connection.ts), which negotiates (nbd-negotiation.ts), validates (nbd-validate.ts) and
// runs requests (nbd-transmission.ts, nbd-request.ts).
import { mkdir, chmod } from 'node:fs/promises';
import { dirname } from 'node:path';
import net from 'node:net';
import type { BlockTarget } from './target.js';
import type { Logger } from '../../util/log.js';
import { realClock, type Clock } from '../../util/clock.js';
import { DstError, errnoOf } from '../../util/errors.js';
import { checkSocketPath } from '../paths.js';
import { normalizePeerAddress } from '../../util/parse.js';
import { DEFAULT_POLICY } from '../types.js';
import { ReportLimiter, addrCapExceeded, type AddrCaps } from '../admission.js';
import { adoptWithUserBuffer } from '../io/adopt.js';
import { removeStaleSocket } from '../io/unix-socket.js';
import { NbdConnection } from './nbd-connection.js';

export interface NbdEndpointOptions {
  target: BlockTarget;
  /** unix socket path (created 0600; a stale socket there is removed); null = none */
  socketPath: string | null;
  /** optional TCP listener; port 0 = any free port */
  tcp: { host: string; port: number } | null;
  log: Logger;
  /** most simultaneous client connections (default 64) */
  maxConnections?: number;
  /**
   * A client that has not finished option negotiation this long after connecting is cut off
   * (default HANDSHAKE_TIMEOUT_MS), so silent or stuck clients cannot hold the connection slots.
   */
  handshakeTimeoutMs?: number;
  /** timers (default the real clock; tests pass a FakeClock) */
  clock?: Clock;
  /** per-address caps for the TCP listener, read at each accept (default the policy defaults) */
  addrCaps?: () => AddrCaps;
}

export const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface NbdEndpoint {
  readonly socketPath: string | null;
  /** the bound TCP address (real port when 0 was asked), or null */
  readonly tcpAddress: { host: string; port: number } | null;
  /** nbd+unix:///?socket=PATH (or nbd://host:port/ when only TCP is served) */
  readonly uri: string;
  /** open client connections */
  readonly connections: number;
  /** Stop accepting. Graceful: wait for in-flight replies, then close. force: destroy at once. */
  close(opts?: { force: boolean }): Promise<void>;
}

/** Size of the buffer each connection's socket reads into (when not straight into a payload). */
const READ_CHUNK = 64 * 1024;

export function nbdUnixUri(socketPath: string): string {
  return `nbd+unix:///?socket=${encodeURIComponent(socketPath).replace(/%2F/gi, '/')}`;
}

function nbdTcpUri(host: string, port: number): string {
  return `nbd://${host.includes(':') ? `[${host}]` : host}:${port}/`;
}

export async function startNbdEndpoint(opts: NbdEndpointOptions): Promise<NbdEndpoint> {
  const { target, socketPath, tcp } = opts;
  if (socketPath === null && tcp === null) {
    throw new DstError('DST_ERR_INVALID', `node ${target.name}: an NBD endpoint needs a socket path or a TCP address`);
  }
  const log = opts.log.child({ node: target.name, op: 'nbd' });
  const conns = new Set<NbdConnection>();
  const servers: net.Server[] = [];
  let nextId = 1;
  let closing: Promise<void> | null = null;
  let closedResolve: (() => void) | null = null;
  const allClosed = new Promise<void>((resolve) => { closedResolve = resolve; });
  const checkAllClosed = (): void => { if (closing !== null && conns.size === 0) closedResolve?.(); };

  const handshake = { clock: opts.clock ?? realClock, ms: opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS };
  const reports = new ReportLimiter(handshake.clock);
  const addrCaps = opts.addrCaps ?? ((): AddrCaps => DEFAULT_POLICY);
  const onConnection = (accepted: net.Socket): void => {
    if (closing !== null) { accepted.destroy(); return; }
    // TCP peers are admitted by address before they cost anything (NBD has no ACL, only the caps);
    // NBD has no refusal before the greeting, so the socket is just closed.
    const addr = accepted.remoteAddress === undefined ? null : normalizePeerAddress(accepted.remoteAddress);
    const over = addr === null ? null : addrCapExceeded(conns, addr, addrCaps());
    if (over !== null) {
      const report = reports.take(addr!);
      if (report !== null) log.warn(`NBD connection refused: ${over}`, { addr, suppressed: report.suppressed });
      accepted.destroy();
      return;
    }
    // Reads into buffers we choose (see adoptWithUserBuffer); the plain socket if that fails.
    let conn: NbdConnection | null = null;
    const scratch = Buffer.allocUnsafe(READ_CHUNK);
    const adopted = adoptWithUserBuffer(accepted,
      () => (conn !== null ? conn.readTarget(scratch) : scratch),
      (n, buf) => { conn?.onBytes(buf.subarray(0, n), true); });
    const socket = adopted ?? accepted;
    if (socket.remoteAddress !== undefined) socket.setNoDelay(true);
    const c = new NbdConnection(socket, addr ?? 'unix', target, log.child({ conn: nextId++ }), adopted === null, handshake, () => {
      conns.delete(c);
      checkAllClosed();
    });
    conn = c;
    conns.add(c);
    if (adopted === null) accepted.resume();
  };

  const listen = (server: net.Server, how: string, arg: () => void): Promise<void> => new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(new DstError('DST_ERR_BUSY', `node ${target.name}: cannot listen for NBD on ${how}: ${err.message}`, { errno: errnoOf(err), cause: err }));
    };
    server.once('error', onError);
    server.once('listening', () => { server.off('error', onError); resolve(); });
    arg();
  });

  const makeServer = (): net.Server => {
    // allowHalfOpen: a client's FIN is handled by the connection (replies still owed go out first)
    const s = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, onConnection);
    s.maxConnections = opts.maxConnections ?? 64;
    s.on('error', (err) => log.error('NBD listener error', { errno: errnoOf(err), error: err.message }));
    servers.push(s);
    return s;
  };

  let tcpAddress: { host: string; port: number } | null = null;
  try {
    if (socketPath !== null) {
      checkSocketPath(socketPath, 'NBD socket path');
      await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
      await removeStaleSocket(socketPath, { what: 'NBD socket', live: 'another process is serving on' });
      const s = makeServer();
      await listen(s, socketPath, () => s.listen(socketPath));
      await chmod(socketPath, 0o600);
    }
    if (tcp !== null) {
      const s = makeServer();
      await listen(s, `${tcp.host}:${tcp.port}`, () => s.listen(tcp.port, tcp.host));
      const a = s.address();
      tcpAddress = a !== null && typeof a === 'object' ? { host: tcp.host, port: a.port } : { host: tcp.host, port: tcp.port };
    }
  } catch (err) {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    throw err;
  }

  const uri = socketPath !== null ? nbdUnixUri(socketPath) : nbdTcpUri(tcpAddress!.host, tcpAddress!.port);
  log.info('NBD endpoint serving', { socket: socketPath, tcp: tcpAddress ? `${tcpAddress.host}:${tcpAddress.port}` : null });

  return {
    socketPath,
    tcpAddress,
    uri,
    get connections() { return conns.size; },
    async close(closeOpts = { force: false }) {
      const force = closeOpts.force;
      if (closing === null) {
        closing = (async () => {
          // Closing a unix-socket server unlinks its socket file (libuv); we do not unlink it
          // ourselves, so a newer endpoint on the same path is never clobbered.
          await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
          await allClosed;
          log.info('NBD endpoint closed');
        })();
      }
      for (const c of [...conns]) c.shutdown(force);
      checkAllClosed();
      await closing;
    },
  };
}
