// One connection of the export's NBD backend to its NBD server (issue 17): connect (TCP or unix
// socket), negotiate (fixed newstyle; STRUCTURED_REPLY; SET_META_CONTEXT base:allocation; GO with
// INFO_BLOCK_SIZE, or EXPORT_NAME when the server has no GO), then carry requests and hand the
// decoded reply pieces to its owner (nbd-backend.ts), which matches cookies and reconnects.
// Negotiation failures are DstErrors naming the URI; NBD_REP_ERR_UNKNOWN carries the server's text.
import net, { type Socket } from 'node:net';
import type { Clock } from '../../util/clock.js';
import { DstError, errnoOf } from '../../util/errors.js';
import { peerText } from '../../util/escape.js';
import {
  ClientFlag, Cmd, GREETING_SIZE, HandshakeFlag, Info, MAX_OPTION_DATA, OPTION_REPLY_HEADER_SIZE, Opt,
  REP_ERR_BIT, Rep, TxFlag, optName, repName,
} from '../../protocol/nbd.js';
import {
  BASE_ALLOCATION, decodeGreeting, decodeOptionReplyHeader, decodeRepMetaContext, encodeClientFlags, encodeInfoRequest, encodeMetaContextRequest,
  encodeOption,
} from '../../protocol/nbd-options.js';
import {
  ReplyDecoder, decodeExportNameReply, decodeInfoReply, encodeRequestHeader,
  type CookieLookup, type ReplyPiece,
} from '../../protocol/nbd-client-codec.js';
import type { NbdUri } from '../../protocol/nbd-uri.js';
import { TurnWriter } from '../io/turn-writer.js';

/** What the handshake learned. */
export interface NbdExportInfo {
  size: number;
  /** transmission flags (TxFlag) */
  flags: number;
  structured: boolean;
  /** the base:allocation context id, null when the server has none (or no structured replies) */
  allocationContext: number | null;
  /** largest request payload (INFO_BLOCK_SIZE maximum, else 32 MiB) */
  maxPayload: number;
  minBlock: number;
}

/** Bytes of negotiation read before the handshake counts as broken (a server's replies are small). */
const MAX_HANDSHAKE_BYTES = 1024 * 1024;
/** How long `node add` waits for the server's handshake. */
const HANDSHAKE_PROBE_MS = 10_000;
const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;
/** The reused buffer socket reads land in when they are not a reply body's. */
const READ_BUFFER_SIZE = 64 * 1024;
/** A body needs this much left to be read into directly (smaller: one read into the scratch takes it and what follows). */
const MIN_LANDING = 16 * 1024;
/** TCP keepalive probes start after this much silence: a server host that vanished is noticed. */
const KEEPALIVE_MS = 10_000;

function linkError(uri: NbdUri, what: string, errno: string, cause?: unknown): DstError {
  return new DstError(errno === 'ENOENT' || errno === 'ECONNREFUSED' || errno === 'EHOSTUNREACH' ? 'DST_ERR_CONN_LOST' : 'DST_ERR_IO',
    `NBD server ${uri.text}: ${what}`, { errno, cause });
}

/** Bytes from the socket, read as the handshake asks for them (bounded). */
class HandshakeReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private total = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private failed: Error | null = null;

  constructor(private readonly uri: NbdUri) {}

  feed(b: Buffer): void {
    this.chunks.push(b);
    this.have += b.length;
    this.total += b.length;
    if (this.total > MAX_HANDSHAKE_BYTES) this.fail(linkError(this.uri, `handshake sent more than ${MAX_HANDSHAKE_BYTES} bytes`, 'EPROTO'));
    this.wake();
  }

  fail(err: Error): void {
    this.failed ??= err;
    this.wake();
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.wake();
    });
  }

  /** Whatever arrived beyond the handshake (the first replies cannot: nothing was sent yet). */
  rest(): Buffer {
    return Buffer.concat(this.chunks);
  }

  private wake(): void {
    const w = this.waiter;
    if (w === null) return;
    if (this.have >= w.n) {
      this.waiter = null;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      this.chunks = all.length > w.n ? [all.subarray(w.n)] : [];
      this.have -= w.n;
      w.resolve(all.subarray(0, w.n));
    } else if (this.failed) {
      this.waiter = null;
      w.reject(this.failed);
    }
  }
}

/**
 * Where the socket's reads go (net.connect's `onread`): into one reused scratch buffer, or straight
 * into the reply body the decoder is collecting — a READ's own buffer — so that neither Node (a
 * fresh 64 KiB buffer per read otherwise, as io/adopt.ts explains for accepted sockets) nor the
 * decoder copies the data. During the handshake every read is the scratch's.
 */
class SocketReads {
  private readonly scratch = Buffer.allocUnsafe(READ_BUFFER_SIZE);
  /** the decoder's landing zone, once the link is up */
  zone: () => Buffer | null = () => null;
  /** bytes read into the scratch: valid until the next read */
  onBytes: (b: Buffer) => void = () => {};
  /** n bytes read into the zone */
  onLanded: (n: number) => void = () => {};

  readonly onread = {
    buffer: (): Buffer => this.zone() ?? this.scratch,
    callback: (n: number, buf: Uint8Array): boolean => {
      if (buf === this.scratch) this.onBytes(this.scratch.subarray(0, n));
      else this.onLanded(n);
      return true;
    },
  };
}

export interface LinkHandlers {
  onPiece(piece: ReplyPiece): void;
  /** the link is gone (err: why); called once */
  onClose(err: Error): void;
}

/** An established link: requests out, reply pieces to the handlers. */
export class NbdLink {
  private readonly decoder: ReplyDecoder;
  private readonly writer: TurnWriter;
  private closed = false;

  private constructor(private readonly socket: Socket, reads: SocketReads, readonly info: NbdExportInfo, lookup: CookieLookup,
    private readonly handlers: LinkHandlers, rest: Buffer) {
    this.decoder = new ReplyDecoder(lookup);
    this.writer = new TurnWriter(socket);
    reads.onBytes = (b) => this.deliver(() => this.decoder.push(b));
    reads.onLanded = (n) => this.deliver(() => this.decoder.landed(n));
    if (rest.length > 0) reads.onBytes(rest);
    reads.zone = () => (this.closed ? null : this.decoder.landingZone(MIN_LANDING));
    socket.on('error', (err) => this.close(err));
    socket.on('close', () => this.close(new DstError('DST_ERR_CONN_LOST', 'the NBD server closed the connection', { errno: 'ECONNRESET' })));
  }

  /** Connect and negotiate within timeoutMs; rejects with a DstError naming the URI. */
  static async open(uri: NbdUri, clock: Clock, timeoutMs: number, lookup: CookieLookup, handlers: LinkHandlers): Promise<NbdLink> {
    const reads = new SocketReads();
    const { onread } = reads;
    const socket = uri.transport === 'tcp' ? net.connect({ host: uri.host, port: uri.port, onread }) : net.connect({ path: uri.socket, onread });
    socket.setNoDelay(true);
    if (uri.transport === 'tcp') socket.setKeepAlive(true, KEEPALIVE_MS);
    const reader = new HandshakeReader(uri);
    reads.onBytes = (b) => reader.feed(Buffer.from(b)); // a copy: the scratch is read into again
    const onError = (err: Error): void => reader.fail(linkError(uri, `cannot connect: ${err.message}`, errnoOf(err) ?? 'EIO', err));
    const onClose = (): void => reader.fail(linkError(uri, 'the server closed the connection during the handshake', 'ECONNRESET'));
    socket.on('error', onError);
    socket.on('close', onClose);
    const timer = clock.setTimer(timeoutMs, () => reader.fail(linkError(uri, `no handshake within ${timeoutMs} ms`, 'ETIMEDOUT')));
    try {
      const info = await negotiate(uri, socket, reader);
      socket.off('error', onError);
      socket.off('close', onClose);
      return new NbdLink(socket, reads, info, lookup, handlers, reader.rest());
    } catch (err) {
      socket.destroy();
      throw err;
    } finally {
      timer.cancel();
    }
  }

  /** Send one request (header, then the WRITE payload without copying it); a turn's requests leave in one writev. */
  send(cmd: number, flags: number, cookie: number, offset: number, length: number, data: Buffer | null): void {
    if (this.closed) return; // its reply never comes: the owner re-issues it on the next link
    const h = encodeRequestHeader(cmd, flags, cookie, offset, length);
    this.writer.write(data === null ? h : [h, data]);
  }

  /** Drop the link; the handlers hear it once. */
  close(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.handlers.onClose(err);
  }

  /** Say goodbye (NBD_CMD_DISC) and close. */
  disconnect(): void {
    if (this.closed) return;
    this.send(Cmd.DISC, 0, 0, 0, 0, null);
    this.writer.flush();
    this.socket.end();
    this.close(new DstError('DST_ERR_CLOSED', 'disconnected', { errno: 'ESHUTDOWN' }));
  }

  /** Decode what a read brought (pushed from the scratch, or landed in place). */
  private deliver(decode: () => ReplyPiece[]): void {
    if (this.closed) return;
    let pieces: ReplyPiece[];
    try {
      pieces = decode();
    } catch (err) {
      this.close(err as Error);
      return;
    }
    for (const p of pieces) this.handlers.onPiece(p);
  }
}

/** Connect once, negotiate, say goodbye: what `node add` learns of the server. */
export async function probeNbd(uri: NbdUri, clock: Clock): Promise<NbdExportInfo> {
  const link = await NbdLink.open(uri, clock, HANDSHAKE_PROBE_MS, { simpleDataLength: () => null }, { onPiece: () => {}, onClose: () => {} });
  link.disconnect();
  return link.info;
}

interface OptionReply { type: number; data: Buffer }

async function optionReply(uri: NbdUri, reader: HandshakeReader, option: number): Promise<OptionReply> {
  const h = decodeOptionReplyHeader(await reader.read(OPTION_REPLY_HEADER_SIZE));
  if (h.option !== option) throw linkError(uri, `reply to ${optName(h.option)} while waiting for ${optName(option)}`, 'EPROTO');
  if (h.length > MAX_OPTION_DATA) throw linkError(uri, `${repName(h.type)} of ${h.length} bytes`, 'EPROTO');
  return { type: h.type, data: h.length === 0 ? Buffer.alloc(0) : await reader.read(h.length) };
}

function refusal(uri: NbdUri, option: number, r: OptionReply): DstError {
  const text = r.data.length > 0 ? `: ${peerText(r.data.toString('utf8'))}` : '';
  if (r.type === Rep.ERR_UNKNOWN) {
    return new DstError('DST_ERR_NOT_FOUND', `NBD server ${uri.text}: export ${JSON.stringify(uri.exportName)} is unknown (${repName(r.type)}${text})`, { errno: 'ENOENT' });
  }
  return new DstError('DST_ERR_IO', `NBD server ${uri.text}: ${optName(option)} refused (${repName(r.type)}${text})`,
    { errno: r.type === Rep.ERR_POLICY ? 'EACCES' : 'EIO' });
}

async function negotiate(uri: NbdUri, socket: Socket, reader: HandshakeReader): Promise<NbdExportInfo> {
  const greeting = decodeGreeting(await reader.read(GREETING_SIZE));
  if ((greeting.handshakeFlags & HandshakeFlag.FIXED_NEWSTYLE) === 0) throw linkError(uri, 'the server does not speak fixed newstyle NBD', 'EPROTO');
  const noZeroes = (greeting.handshakeFlags & HandshakeFlag.NO_ZEROES) !== 0;
  socket.write(encodeClientFlags(ClientFlag.C_FIXED_NEWSTYLE | (noZeroes ? ClientFlag.C_NO_ZEROES : 0)));

  socket.write(encodeOption(Opt.STRUCTURED_REPLY));
  const sr = await optionReply(uri, reader, Opt.STRUCTURED_REPLY);
  const structured = sr.type === Rep.ACK;
  if (!structured && (sr.type & REP_ERR_BIT) === 0) throw linkError(uri, `${repName(sr.type)} to NBD_OPT_STRUCTURED_REPLY`, 'EPROTO');

  let allocationContext: number | null = null;
  if (structured) {
    socket.write(encodeOption(Opt.SET_META_CONTEXT, encodeMetaContextRequest(uri.exportName, [BASE_ALLOCATION])));
    for (;;) {
      const r = await optionReply(uri, reader, Opt.SET_META_CONTEXT);
      if (r.type === Rep.META_CONTEXT) {
        const ctx = decodeRepMetaContext(r.data);
        if (ctx.name === BASE_ALLOCATION) allocationContext = ctx.id;
      } else if (r.type === Rep.ACK || (r.type & REP_ERR_BIT) !== 0) {
        if (r.type === Rep.ERR_UNKNOWN) throw refusal(uri, Opt.SET_META_CONTEXT, r);
        break; // no context: extents are all data
      } else throw linkError(uri, `${repName(r.type)} to NBD_OPT_SET_META_CONTEXT`, 'EPROTO');
    }
  }

  socket.write(encodeOption(Opt.GO, encodeInfoRequest(uri.exportName, [Info.BLOCK_SIZE])));
  let size: number | null = null;
  let flags = 0;
  let maxPayload = DEFAULT_MAX_PAYLOAD;
  let minBlock = 1;
  for (;;) {
    const r = await optionReply(uri, reader, Opt.GO);
    if (r.type === Rep.ACK) break;
    if (r.type === Rep.ERR_UNSUP) {
      // an old server: NBD_OPT_EXPORT_NAME (no reply on failure: the server just closes)
      socket.write(encodeOption(Opt.EXPORT_NAME, Buffer.from(uri.exportName, 'utf8')));
      const reply = decodeExportNameReply(await reader.read(10));
      if (!noZeroes) await reader.read(124);
      size = reply.size;
      flags = reply.flags;
      break;
    }
    if ((r.type & REP_ERR_BIT) !== 0) throw refusal(uri, Opt.GO, r);
    if (r.type !== Rep.INFO) continue; // other replies carry nothing we use
    const info = decodeInfoReply(r.data);
    if (info.type === Info.EXPORT) {
      size = info.size;
      flags = info.flags;
    } else if (info.type === Info.BLOCK_SIZE) {
      minBlock = Math.max(1, info.minimum);
      maxPayload = Math.min(DEFAULT_MAX_PAYLOAD, Math.max(info.minimum, info.maximum));
    }
  }
  if (size === null) throw linkError(uri, 'NBD_OPT_GO finished without NBD_INFO_EXPORT', 'EPROTO');
  return { size, flags: flags & 0xffff, structured, allocationContext, maxPayload, minBlock };
}

/** Transmission flags as words, for logs and `node show`. */
export function txFlagsText(flags: number): string {
  const names = Object.entries(TxFlag).filter(([k, v]) => k !== 'HAS_FLAGS' && (flags & v) !== 0).map(([k]) => k.toLowerCase());
  return names.join(',') || 'none';
}
