// A minimal, independent NBD client for tests: fixed newstyle, OPT_GO, simple replies,
// many requests in flight matched by cookie. Written from the spec, not from our server's
// codec, so it cross-checks the server.
import { connect, type Socket } from 'node:net';

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const OPT_REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const OPT_GO = 7;
const REP_ACK = 1;
const REP_INFO = 3;
const INFO_EXPORT = 0;
export const NBD_CMD = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, WRITE_ZEROES: 6 } as const;
export const NBD_FLAG_FUA = 1;

export class NbdError extends Error {
  constructor(readonly errno: number, op: string) {
    super(`NBD ${op} failed with error ${errno}`);
  }
}

interface Pending {
  length: number;
  isRead: boolean;
  op: string;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}

export class NbdClient {
  private buf: Buffer = Buffer.alloc(0);
  private pending = new Map<bigint, Pending>();
  private nextCookie = 1n;
  size = 0;
  flags = 0;
  private closedErr: Error | null = null;

  private constructor(private readonly sock: Socket) {}

  /** Connect to a unix socket path (or {host, port}) and negotiate with OPT_GO. */
  static async connect(target: string | { host: string; port: number }, exportName = ''): Promise<NbdClient> {
    const sock = typeof target === 'string' ? connect(target) : connect(target);
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    const c = new NbdClient(sock);
    await c.handshake(exportName);
    return c;
  }

  private async readExact(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      const chunk = await new Promise<Buffer>((resolve, reject) => {
        const onData = (d: Buffer): void => { cleanup(); resolve(d); };
        const onEnd = (): void => { cleanup(); reject(new Error('connection closed during handshake')); };
        const cleanup = (): void => { this.sock.off('data', onData); this.sock.off('close', onEnd); this.sock.off('error', onEnd); };
        this.sock.on('data', onData);
        this.sock.once('close', onEnd);
        this.sock.once('error', onEnd);
      });
      this.buf = Buffer.concat([this.buf, chunk]);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  private async handshake(exportName: string): Promise<void> {
    const greet = await this.readExact(18);
    if (greet.readBigUInt64BE(0) !== NBDMAGIC || greet.readBigUInt64BE(8) !== IHAVEOPT) throw new Error('bad NBD greeting');
    const cflags = Buffer.alloc(4);
    cflags.writeUInt32BE(greet.readUInt16BE(16) & 3);
    const name = Buffer.from(exportName);
    const data = Buffer.alloc(4 + name.length + 2);
    data.writeUInt32BE(name.length, 0);
    name.copy(data, 4);
    const opt = Buffer.alloc(16);
    opt.writeBigUInt64BE(IHAVEOPT, 0);
    opt.writeUInt32BE(OPT_GO, 8);
    opt.writeUInt32BE(data.length, 12);
    this.sock.write(Buffer.concat([cflags, opt, data]));
    for (;;) {
      const hdr = await this.readExact(20);
      if (hdr.readBigUInt64BE(0) !== OPT_REPLY_MAGIC) throw new Error('bad option reply magic');
      const type = hdr.readUInt32BE(12);
      const body = await this.readExact(hdr.readUInt32BE(16));
      if (type === REP_ACK) break;
      if (type & 0x80000000) throw new Error(`OPT_GO refused: 0x${type.toString(16)} ${body.toString()}`);
      if (type === REP_INFO && body.readUInt16BE(0) === INFO_EXPORT) {
        this.size = Number(body.readBigUInt64BE(2));
        this.flags = body.readUInt16BE(10);
      }
    }
    this.sock.on('data', (d: Buffer) => this.onData(d));
    this.sock.on('close', () => this.fail(new Error('NBD connection closed')));
    this.sock.on('error', (e) => this.fail(e));
    if (this.buf.length) { const rest = this.buf; this.buf = Buffer.alloc(0); this.onData(rest); }
  }

  private fail(err: Error): void {
    this.closedErr ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.buf.length < 16) return;
      if (this.buf.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) { this.fail(new Error('bad reply magic')); this.sock.destroy(); return; }
      const error = this.buf.readUInt32BE(4);
      const cookie = this.buf.readBigUInt64BE(8);
      const p = this.pending.get(cookie);
      if (!p) { this.fail(new Error(`reply for unknown cookie ${cookie}`)); this.sock.destroy(); return; }
      const dataLen = p.isRead && error === 0 ? p.length : 0;
      if (this.buf.length < 16 + dataLen) return;
      const data = Buffer.from(this.buf.subarray(16, 16 + dataLen));
      this.buf = this.buf.subarray(16 + dataLen);
      this.pending.delete(cookie);
      if (error) p.reject(new NbdError(error, p.op));
      else p.resolve(data);
    }
  }

  private request(type: number, offset: number, length: number, payload: Buffer | null, flags = 0, op = 'request'): Promise<Buffer> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    const cookie = this.nextCookie++;
    const hdr = Buffer.alloc(28);
    hdr.writeUInt32BE(REQUEST_MAGIC, 0);
    hdr.writeUInt16BE(flags, 4);
    hdr.writeUInt16BE(type, 6);
    hdr.writeBigUInt64BE(cookie, 8);
    hdr.writeBigUInt64BE(BigInt(offset), 16);
    hdr.writeUInt32BE(length, 24);
    return new Promise((resolve, reject) => {
      this.pending.set(cookie, { length, isRead: type === NBD_CMD.READ, op, resolve, reject });
      this.sock.write(payload ? Buffer.concat([hdr, payload]) : hdr);
    });
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.request(NBD_CMD.READ, offset, length, null, 0, 'read');
  }

  async write(offset: number, data: Buffer, fua = false): Promise<void> {
    await this.request(NBD_CMD.WRITE, offset, data.length, data, fua ? NBD_FLAG_FUA : 0, 'write');
  }

  async flush(): Promise<void> {
    await this.request(NBD_CMD.FLUSH, 0, 0, null, 0, 'flush');
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.request(NBD_CMD.TRIM, offset, length, null, 0, 'trim');
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    await this.request(NBD_CMD.WRITE_ZEROES, offset, length, null, 0, 'write-zeroes');
  }

  /** Send a raw request (tests of bad input). */
  raw(type: number, offset: number, length: number, payload: Buffer | null, flags: number): Promise<Buffer> {
    return this.request(type, offset, length, payload, flags, `cmd ${type}`);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  close(): void {
    this.sock.destroy();
  }
}
