// A hand-built DST wire client for tests: it speaks the protocol directly to an export,
// ignoring whatever the export granted, so the export's own checks can be proven.
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import {
  Cmd, Op, FrameDecoder, encodeFrame, encodeHello, decodeHelloReply, decodeRefusal, type Frame, type HelloReply, Access,
} from '../../src/protocol/wire.js';

export class WireClient {
  private dec = new FrameDecoder();
  private waiters: ((f: Frame | null) => void)[] = [];
  private frames: Frame[] = [];
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.dec.feed(chunk);
      for (let f = this.dec.next(); f; f = this.dec.next()) this.deliver(f);
    });
    this.closed = new Promise((resolve) => socket.on('close', () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(null);
      resolve();
    }));
    socket.on('error', () => {});
  }

  /** Connect to "host:port"; localAddress picks the source address (e.g. 127.0.0.2 to be another client). */
  static connect(hostPort: string, localAddress?: string): Promise<WireClient> {
    const i = hostPort.lastIndexOf(':');
    return new Promise((resolve, reject) => {
      const host = hostPort.slice(0, i).replace(/^\[|\]$/g, '');
      const s = connect({ host, port: Number(hostPort.slice(i + 1)), ...(localAddress ? { localAddress } : {}) }, () => resolve(new WireClient(s)));
      s.once('error', reject);
    });
  }

  private deliver(f: Frame): void {
    const w = this.waiters.shift();
    if (w) w(f);
    else this.frames.push(f);
  }

  /** Next frame, or null when the connection closed. */
  next(timeoutMs = 5000): Promise<Frame | null> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no frame within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((x) => { clearTimeout(timer); resolve(x); });
    });
  }

  send(parts: Buffer[] | Buffer): void {
    this.socket.write(Array.isArray(parts) ? Buffer.concat(parts) : parts);
  }

  /** HELLO asking for `access`; resolves with the reply (status, fields or refusal message). */
  async hello(opts: { exportName?: string; access?: number; sessionId?: Buffer; suite?: string } = {}):
    Promise<{ status: number; reply: HelloReply | null; message: string | null }> {
    this.send(encodeFrame({ cmd: Cmd.HELLO, payload: encodeHello({
      version: 2, exportName: opts.exportName ?? '', sessionId: opts.sessionId ?? randomBytes(16),
      access: opts.access ?? (Access.READ | Access.WRITE), suite: opts.suite ?? 'none', keyId: null, nonce: randomBytes(32),
    }) }));
    const f = await this.next();
    if (!f) throw new Error('connection closed before HELLO_REPLY');
    if (f.cmd !== Cmd.HELLO_REPLY) throw new Error(`expected HELLO_REPLY, got cmd ${f.cmd}`);
    if (f.status !== 0) return { status: f.status, reply: null, message: decodeRefusal(f.payload) };
    return { status: 0, reply: decodeHelloReply(f.payload), message: null };
  }

  /** Send one IO frame and wait for its IO_RESPONSE. */
  async io(op: Op, id: number, offset: number, length: number, payload: Buffer | null = null, flags = 0): Promise<Frame | null> {
    this.send(encodeFrame({ cmd: Cmd.IO, op, id, offset, length, payload, flags, ackedBelow: 0 }));
    return this.next();
  }

  close(): void {
    this.socket.destroy();
  }
}
