// FaultProxy: a TCP proxy between two dst nodes (or any client and server) whose faults are switched at
// run time: pass, delay, stall (blackhole), cut, bit flips at exact stream offsets, refusing new
// connections, and injecting recorded bytes. Usable in-process by tests and by `dst fault-proxy`.
//
// Model. Every accepted connection gets its own connection to the target and two pipes:
// up (client → target) and down (target → client). Each pipe is a FIFO of chunks; every chunk is
// stamped "due" when received (now, or now + delay). Bytes are counted, captured and corrupted when
// received; they leave in order when the mode lets them (pass: at once, delay: when due, stall: never
// until the mode changes). A FIN from one side is queued behind that side's bytes, so it is held and
// delayed like data. Memory is bounded: a pipe that holds more than `maxHeldBytes`, or whose
// destination socket needs to drain, pauses its source socket (TCP backpressure does the rest).
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { DstError } from '../util/errors.js';
import { formatHostPort, parseHostPort, type HostPort } from '../util/parse.js';
import { realClock, type Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import { CaptureWriter, type Direction } from './capture.js';
import { Connection, destroySocket, type Pipe } from './pipe.js';
import { checkBit, checkCount, checkDir, corruptChunk, type CorruptRule, type DirSpec, type ProxyMode } from './rules.js';
import { injectPlan } from './inject-plan.js';

export type { Direction } from './capture.js';
export type { CorruptRule, DirSpec, ProxyMode } from './rules.js';
export { MAX_INJECT_BYTES } from './inject-plan.js';

/** Default bound on bytes held per connection per direction before the source is paused. */
export const DEFAULT_MAX_HELD_BYTES = 64 * 1024 * 1024;

export interface FaultProxyOptions {
  /** "IP:PORT" (port 0 = any free port) or a HostPort */
  listen: string | HostPort;
  /** "HOST:PORT" or a HostPort */
  target: string | HostPort;
  /** record both directions to this file (see capture.ts for the format) */
  capture?: string | null;
  /** per connection, per direction (default 64 MiB) */
  maxHeldBytes?: number;
  logger?: Logger;
  clock?: Clock;
}

export interface FaultProxyConnectionStatus {
  id: number;
  client: string;
  bytesUp: number;
  bytesDown: number;
  heldUp: number;
  heldDown: number;
}

export interface FaultProxyStatus {
  listen: string | null;
  target: string;
  mode: ProxyMode;
  delayMs: number;
  refusing: boolean;
  corrupt: CorruptRule | null;
  /** connections open now */
  connections: number;
  /** connections accepted and forwarded since start */
  accepted: number;
  /** connections closed at once because of `refuse` */
  refused: number;
  /** bytes received from clients / from the target since start */
  bytesUp: number;
  bytesDown: number;
  /** bytes held in the proxy now, over all connections */
  heldUp: number;
  heldDown: number;
  /** bytes whose bit was flipped */
  corrupted: number;
  /** bytes written by `inject` (summed over connections) */
  injected: number;
  capture: string | null;
  /** why capturing stopped, if it did */
  captureError: string | null;
  connectionList: FaultProxyConnectionStatus[];
}

export interface InjectOptions {
  /** only into this live connection (default: every live connection) */
  connection?: number;
  /** when the file is a capture: only records of this captured connection id */
  fromConnection?: number;
}

export interface InjectResult {
  /** bytes written into each connection */
  bytes: number;
  /** connections injected into */
  connections: number;
}

/**
 * Events: 'listening' (address string), 'connection' ({id, client}), 'connection-closed' ({id}).
 * Never emits 'error'.
 */
export class FaultProxy extends EventEmitter {
  readonly target: HostPort;
  readonly capturePath: string | null;
  private readonly listenAt: HostPort;
  private readonly maxHeld: number;
  private readonly log: Logger;
  private readonly clock: Clock;
  private server: net.Server | null = null;
  private bound: HostPort | null = null;
  private capture: CaptureWriter | null = null;
  private captureError: string | null = null;
  private readonly conns = new Map<number, Connection>();
  private nextId = 1;
  private closing: Promise<void> | null = null;

  private mode: ProxyMode = 'pass';
  private delayMs = 0;
  private refusing = false;
  private rule: CorruptRule | null = null;
  private counters = { accepted: 0, refused: 0, bytesUp: 0, bytesDown: 0, corrupted: 0, injected: 0 };

  constructor(opts: FaultProxyOptions) {
    super();
    this.listenAt = typeof opts.listen === 'string' ? parseHostPort(opts.listen, 'listen address') : opts.listen;
    this.target = typeof opts.target === 'string' ? parseHostPort(opts.target, 'target address', false) : opts.target;
    this.capturePath = opts.capture ?? null;
    this.maxHeld = opts.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES;
    checkCount(this.maxHeld, 'maxHeldBytes', 1);
    this.log = opts.logger ?? silentLogger;
    this.clock = opts.clock ?? realClock;
  }

  /** Bind and start accepting. Resolves with the real address (port 0 → the port chosen). */
  async start(): Promise<HostPort> {
    if (this.server) throw new DstError('DST_ERR_STATE', 'fault-proxy: already started');
    if (this.closing) throw new DstError('DST_ERR_CLOSED', 'fault-proxy: closed');
    if (this.capturePath !== null) this.capture = new CaptureWriter(this.capturePath);
    const server = net.createServer({ allowHalfOpen: true }, (sock) => this.onAccept(sock));
    this.server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        server.once('error', onError);
        server.listen({ host: this.listenAt.host, port: this.listenAt.port }, () => {
          server.off('error', onError);
          resolve();
        });
      });
    } catch (err) {
      this.server = null;
      this.capture?.close();
      this.capture = null;
      const code = (err as { code?: string }).code ?? null;
      throw new DstError(code === 'EADDRINUSE' ? 'DST_ERR_BUSY' : 'DST_ERR_IO',
        `fault-proxy: cannot listen on ${formatHostPort(this.listenAt)}: ${(err as Error).message}`, { cause: err, errno: code });
    }
    server.on('error', (err) => this.log.error('listener error', { op: 'fault-proxy', error: err.message }));
    const a = server.address() as net.AddressInfo;
    this.bound = { host: a.address, port: a.port };
    this.log.info('listening', { op: 'fault-proxy', listen: formatHostPort(this.bound), target: formatHostPort(this.target) });
    this.emit('listening', formatHostPort(this.bound));
    return this.bound;
  }

  /** The bound address (after start()). */
  get address(): HostPort {
    if (!this.bound) throw new DstError('DST_ERR_STATE', 'fault-proxy: not started');
    return this.bound;
  }

  /** "ip:port" / "[ip6]:port" of the bound address. */
  get addressText(): string {
    return formatHostPort(this.address);
  }

  /** Stop accepting, destroy every connection, close the capture file. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      const server = this.server;
      for (const c of [...this.conns.values()]) this.destroyConn(c, false);
      if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
      this.capture?.close();
      this.log.info('closed', { op: 'fault-proxy' });
    })();
    return this.closing;
  }

  // ---- faults ------------------------------------------------------------------------------

  /** Forward normally: no delay, no stall, no corruption. Held bytes are released in order. */
  pass(): void {
    this.mode = 'pass';
    this.delayMs = 0;
    this.rule = null;
    this.reflow();
  }

  /** Delay every chunk, both directions, by ms (order preserved). Bytes already held keep their stamp. */
  delay(ms: number): void {
    checkCount(ms, 'delay', 0);
    this.mode = 'delay';
    this.delayMs = ms;
    this.reflow();
  }

  /** Blackhole: hold every byte (and FIN) in both directions; connections stay open. */
  stall(): void {
    this.mode = 'stall';
    this.reflow();
  }

  /** Destroy every current connection, both sides, at once (reset: send RST instead of FIN). */
  cut(opts: { reset?: boolean } = {}): number {
    const all = [...this.conns.values()];
    for (const c of all) this.destroyConn(c, opts.reset ?? false);
    if (all.length) this.log.info('cut', { op: 'fault-proxy', connections: all.length, reset: opts.reset ?? false });
    return all.length;
  }

  /** Flip bit `bit` of the byte at absolute offset `offset` of every connection's stream in dir. */
  corruptAt(offset: number, dir: DirSpec = 'up', bit = 0): void {
    this.rule = { kind: 'offset', offset: checkCount(offset, 'offset', 0), dir: checkDir(dir), bit: checkBit(bit) };
  }

  /** Flip bit `bit` of every Nth byte (offsets N-1, 2N-1, …) of every connection's stream in dir. */
  corruptEvery(every: number, dir: DirSpec = 'up', bit = 0): void {
    this.rule = { kind: 'every', every: checkCount(every, 'corrupt interval', 1), dir: checkDir(dir), bit: checkBit(bit) };
  }

  /** Stop corrupting (the mode is kept). */
  corruptOff(): void {
    this.rule = null;
  }

  /** Close new connections at once (existing ones are kept). */
  refuse(): void {
    this.refusing = true;
  }

  /** Accept new connections again. */
  accept(): void {
    this.refusing = false;
  }

  /**
   * Write bytes into live connection(s), after what they already hold, under the current mode
   * (no corruption). `source` is a Buffer or a file path. A capture file (see capture.ts) injects its
   * recorded chunks: with dir up/down only the records of that direction; with both, each record in
   * its own direction. Any other file is injected as is (with both: into both directions).
   */
  async inject(source: string | Buffer, dir: DirSpec = 'up', opts: InjectOptions = {}): Promise<InjectResult> {
    checkDir(dir);
    const { plan, what } = await injectPlan(source, dir, opts.fromConnection);

    let targets: Connection[];
    if (opts.connection !== undefined) {
      const c = this.conns.get(opts.connection);
      if (!c) throw new DstError('DST_ERR_NOT_FOUND', `inject: no live connection ${opts.connection}`);
      targets = [c];
    } else {
      targets = [...this.conns.values()];
    }
    if (targets.length === 0) throw new DstError('DST_ERR_STATE', 'inject: no live connection to inject into');

    let perConn = 0;
    for (const p of plan) perConn += p.data.length;
    const due = this.clock.now() + (this.mode === 'delay' ? this.delayMs : 0);
    let injectedInto = 0;
    for (const c of targets) {
      let any = false;
      for (const p of plan) {
        const pipe = c[p.dir];
        if (pipe.endSent || pipe.dst.destroyed || p.data.length === 0) continue;
        this.record(p.dir, c.id, p.data, true);
        pipe.push({ data: p.data, due });
        this.counters.injected += p.data.length;
        any = true;
      }
      if (any) injectedInto++;
      this.pump(c.up);
      this.pump(c.down);
    }
    this.log.info('injected', { op: 'fault-proxy', from: what, dir, bytes: perConn, connections: injectedInto });
    return { bytes: perConn, connections: injectedInto };
  }

  status(): FaultProxyStatus {
    let heldUp = 0;
    let heldDown = 0;
    const connectionList: FaultProxyConnectionStatus[] = [];
    for (const c of this.conns.values()) {
      heldUp += c.up.queued;
      heldDown += c.down.queued;
      connectionList.push({ id: c.id, client: c.peer, bytesUp: c.up.offset, bytesDown: c.down.offset, heldUp: c.up.queued, heldDown: c.down.queued });
    }
    return {
      listen: this.bound ? formatHostPort(this.bound) : null,
      target: formatHostPort(this.target),
      mode: this.mode,
      delayMs: this.delayMs,
      refusing: this.refusing,
      corrupt: this.rule ? { ...this.rule } : null,
      connections: this.conns.size,
      accepted: this.counters.accepted,
      refused: this.counters.refused,
      bytesUp: this.counters.bytesUp,
      bytesDown: this.counters.bytesDown,
      heldUp,
      heldDown,
      corrupted: this.counters.corrupted,
      injected: this.counters.injected,
      capture: this.capturePath,
      captureError: this.captureError,
      connectionList,
    };
  }

  // ---- plumbing ----------------------------------------------------------------------------

  private onAccept(client: net.Socket): void {
    const peer = client.remoteAddress !== undefined && client.remotePort !== undefined
      ? formatHostPort({ host: client.remoteAddress, port: client.remotePort }) : 'unknown';
    if (this.refusing || this.closing) {
      this.counters.refused++;
      client.on('error', () => {});
      client.destroy();
      this.log.debug('refused connection', { op: 'fault-proxy', client: peer });
      return;
    }
    const id = this.nextId++;
    this.counters.accepted++;
    const upstream = net.connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const c = new Connection(id, client, upstream, peer);
    this.conns.set(id, c);
    this.log.debug('connection', { op: 'fault-proxy', conn: id, client: peer });

    client.on('data', (chunk: Buffer) => this.ingest(c, c.up, chunk));
    upstream.on('data', (chunk: Buffer) => this.ingest(c, c.down, chunk));
    client.on('end', () => { c.up.ended = true; this.pump(c.up); });
    upstream.on('end', () => { c.down.ended = true; this.pump(c.down); });
    client.on('drain', () => this.flow(c.down));
    upstream.on('drain', () => this.flow(c.up));
    const onError = (side: string) => (err: Error): void => {
      this.log.debug('socket error', { op: 'fault-proxy', conn: id, side, error: err.message });
      this.destroyConn(c, false);
    };
    client.on('error', onError('client'));
    upstream.on('error', onError('target'));
    const onClose = (incoming: Pipe, outgoing: Pipe, other: net.Socket) => (hadError: boolean): void => {
      // A side that finished cleanly both ways lets the other side finish; anything else takes both down.
      if (hadError || !incoming.ended || !outgoing.endSent) destroySocket(other, false);
      if (client.destroyed && upstream.destroyed) this.forget(c);
    };
    client.on('close', onClose(c.up, c.down, upstream));
    upstream.on('close', onClose(c.down, c.up, client));
    this.emit('connection', { id, client: peer });
  }

  private forget(c: Connection): void {
    c.up.clear();
    c.down.clear();
    if (c.closed) return;
    c.closed = true;
    this.conns.delete(c.id);
    this.log.debug('connection closed', { op: 'fault-proxy', conn: c.id });
    this.emit('connection-closed', { id: c.id });
  }

  private destroyConn(c: Connection, reset: boolean): void {
    c.up.clear();
    c.down.clear();
    destroySocket(c.client, reset);
    destroySocket(c.upstream, reset);
    this.forget(c);
  }

  private record(dir: Direction, conn: number, data: Buffer, injected: boolean): void {
    if (!this.capture || this.capture.closed) return;
    try {
      this.capture.record(dir, conn, data, injected);
    } catch (err) {
      this.captureError = (err as Error).message;
      this.log.error('capture stopped', { op: 'fault-proxy', error: this.captureError });
    }
  }

  private ingest(c: Connection, pipe: Pipe, chunk: Buffer): void {
    if (c.closed) return;
    const start = pipe.offset;
    pipe.offset += chunk.length;
    if (pipe.dir === 'up') this.counters.bytesUp += chunk.length;
    else this.counters.bytesDown += chunk.length;
    this.record(pipe.dir, c.id, chunk, false);
    const { data, flipped } = corruptChunk(this.rule, pipe.dir, start, chunk);
    this.counters.corrupted += flipped;
    pipe.push({ data, due: this.clock.now() + (this.mode === 'delay' ? this.delayMs : 0) });
    this.pump(pipe);
  }

  private reflow(): void {
    for (const c of this.conns.values()) {
      this.pump(c.up);
      this.pump(c.down);
    }
  }

  /** Move what the mode allows from the pipe's queue to its destination. */
  private pump(pipe: Pipe): void {
    pipe.timer?.cancel();
    pipe.timer = null;
    if (pipe.dst.destroyed) {
      pipe.clear();
      return;
    }
    if (this.mode !== 'stall') {
      const now = this.clock.now();
      while (pipe.length > 0) {
        const e = pipe.peek()!;
        if (this.mode === 'delay' && e.due > now) {
          pipe.timer = this.clock.setTimer(Math.max(1, Math.ceil(e.due - now)), () => {
            pipe.timer = null;
            this.pump(pipe);
          });
          break;
        }
        pipe.shift();
        pipe.dst.write(e.data);
      }
      if (pipe.length === 0 && pipe.ended && !pipe.endSent) {
        pipe.endSent = true;
        pipe.dst.end();
      }
    }
    this.flow(pipe);
  }

  /** Pause the pipe's source while it holds too much or its destination needs to drain. */
  private flow(pipe: Pipe): void {
    if (pipe.src.destroyed) return;
    const hold = pipe.queued >= this.maxHeld || pipe.dst.writableNeedDrain;
    if (hold && !pipe.paused) {
      pipe.paused = true;
      pipe.src.pause();
    } else if (!hold && pipe.paused) {
      pipe.paused = false;
      pipe.src.resume();
    }
  }
}
