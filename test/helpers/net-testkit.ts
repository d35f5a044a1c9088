// Small loopback helpers for tests that put a FaultProxy between a client and a server:
// an echo server, a sink server that records (and can answer on) every connection, a byte collector
// with bounded waits. Loopback only; every wait has a timeout.
import net from 'node:net';
import { DstError } from '../../src/util/errors.js';

/** Reject with DST_ERR_TIMEOUT if `p` does not settle within ms. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DstError('DST_ERR_TIMEOUT', `timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Poll `cond` every few ms until true, or fail after ms. */
export async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new DstError('DST_ERR_TIMEOUT', `timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Collects everything a socket receives; wait for a byte count or for the close. */
export class Collector {
  private chunks: Buffer[] = [];
  private total = 0;
  private waiters: (() => void)[] = [];
  ended = false;
  closed = false;
  error: Error | null = null;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.total += c.length;
      this.wake();
    });
    socket.on('end', () => { this.ended = true; this.wake(); });
    socket.on('error', (err) => { this.error = err; this.wake(); });
    socket.on('close', () => { this.closed = true; this.wake(); });
  }

  get length(): number {
    return this.total;
  }

  bytes(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      const left = end - Date.now();
      if (left <= 0) throw new DstError('DST_ERR_TIMEOUT', `timed out after ${ms} ms waiting for ${what} (have ${this.total} bytes)`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** Wait until at least n bytes arrived; returns all bytes so far. */
  async waitBytes(n: number, ms = 2000): Promise<Buffer> {
    await this.until(() => this.total >= n, ms, `${n} bytes`);
    return this.bytes();
  }

  /** Wait until the socket closed (either side). */
  async waitClosed(ms = 2000): Promise<void> {
    await this.until(() => this.closed, ms, 'close');
  }

  /** Wait until the peer's FIN (or the close). */
  async waitEnded(ms = 2000): Promise<void> {
    await this.until(() => this.ended || this.closed, ms, 'end');
  }
}

export interface TestServer {
  server: net.Server;
  port: number;
  host: string;
  /** "host:port" */
  address: string;
  /** accepted sockets, in order, each with a collector of what it received */
  conns: Collector[];
  /** wait until n connections were accepted */
  waitConnections(n: number, ms?: number): Promise<Collector[]>;
  close(): Promise<void>;
}

async function startServer(onConn: (c: Collector) => void, host = '127.0.0.1'): Promise<TestServer> {
  const conns: Collector[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    const c = new Collector(sock);
    conns.push(c);
    onConn(c);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    host,
    address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
    conns,
    async waitConnections(n: number, ms = 2000) {
      await waitUntil(() => conns.length >= n, ms, `${n} connection(s) at the server`);
      return conns;
    },
    close: () => new Promise<void>((resolve) => {
      for (const c of conns) c.socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** Echoes every byte back; ends its side when the client ends. */
export function startEchoServer(host = '127.0.0.1'): Promise<TestServer> {
  return startServer((c) => {
    c.socket.on('data', (d: Buffer) => c.socket.write(d));
    c.socket.on('end', () => c.socket.end());
    c.socket.on('error', () => {});
  }, host);
}

/** Records what it receives and never answers by itself (write to conns[i].socket to send down). */
export function startSinkServer(host = '127.0.0.1'): Promise<TestServer> {
  return startServer((c) => {
    c.socket.on('error', () => {});
  }, host);
}

/** Connect to host:port; resolves with a collector once connected. */
export function connectCollector(port: number, host = '127.0.0.1', ms = 2000): Promise<Collector> {
  return withTimeout(new Promise<Collector>((resolve, reject) => {
    const sock = net.connect({ host, port, allowHalfOpen: true });
    const c = new Collector(sock);
    sock.once('connect', () => { sock.off('error', reject); resolve(c); });
    sock.once('error', reject);
  }), ms, `connect to ${host}:${port}`);
}
