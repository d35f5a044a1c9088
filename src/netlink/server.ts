// Engine end of the control socket: generic-netlink requests in, replies / dumps / errors /
// event streams out, over a unix STREAM socket.
//
// Per connection, requests are handled one at a time in arrival order (a pipelining client gets
// its replies in order; at most MAX_INBOX parsed requests wait, then the socket is not read).
//
// Replies (see family.ts for the reply kinds):
//   object/wrapped → one message, type = DST_FAMILY_ID, genl cmd = the request's cmd, same seq;
//                    plus an ack (NLMSG_ERROR 0) if the request asked for NLM_F_ACK
//   dump           → one NLM_F_MULTI message per element, then NLMSG_DONE
//   error          → NLMSG_ERROR: -errno, the request's nlmsghdr echoed (NLM_F_CAPPED), ext-ack
//                    TLVs (NLM_F_ACK_TLVS): NLMSGERR_ATTR_MSG = the message, NLMSGERR_ATTR_COOKIE =
//                    the stable DST_ERR_* code (NUL-terminated ASCII).
// Malformed input (nlmsg_len < 20 or > limits.maxControlMessage, wrong family id, missing
// NLM_F_REQUEST, genl version ≠ 1, unknown cmd, bad attributes) → an error reply, then THAT
// connection is closed; other connections are untouched. A partial message older than
// limits.controlPartialTimeoutMs (measured with the injected Clock) → error reply (ETIMEDOUT), close.
//
// `hello` is answered here ({version, pid}) — the version check is the client's job; `subscribe`
// goes to onSubscribe, never to the handler. Every other command goes to the handler.
//
// Subscribe: the reply to SUBSCRIBE is the `subscribed` record {seq: 0, ts, node, event}
// (NLM_F_MULTI); every event after it is a DST_CMD.EVENT message with the request's seq and
// NLM_F_MULTI. Events wait in a bounded queue (maxEventQueue records, default 1024) while the
// socket's write buffer is over its high-water mark; when the queue is full, events are dropped
// and counted, and when the reader reaches that point in the stream it receives
// `events-lost {count, seq: seq of the last dropped record}`. Other requests on a subscribed
// connection are refused (DST_ERR_STATE / EBUSY); the connection stays subscribed.
//
// Peer credentials: Node cannot read SO_PEERCRED, so `peer.uid` is undefined; access control is
// the socket's mode (0600, or 0660 with a group) and its directory.
import { chmodSync, unlinkSync } from 'node:fs';
import { removeStaleSocket } from '../engine/io/unix-socket.js';
import net from 'node:net';
import type { ControlCommand, EventRecord, Limits } from '../engine/types.js';
import { checkSocketPath } from '../engine/paths.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { DstError, errnoNumber, errnoOf } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import {
  NLMSG_HDRLEN,
  NLM_F_ACK,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  type NlMsgHeader,
  formatDone,
  formatError,
  formatGenlMessage,
  parseGenlHeader,
  parseNlMsgHeader,
} from './codec.js';
import {
  DST_CMD,
  DST_FAMILY_ID,
  DST_GENL_VERSION,
  type AnyCommandSpec,
  commandByNumber,
  decodeObject,
  encodeObject,
} from './family.js';
import { eventRecordSchema } from './objects.js';
import { NlFramer } from './framer.js';
import type { AnySchema } from './schema.js';

export interface ControlPeer {
  /** unavailable from Node (no SO_PEERCRED); always undefined for now */
  uid?: number;
}

export type ControlHandler = (cmd: ControlCommand, args: object, peer: ControlPeer) => Promise<object | object[]>;

export interface ControlServerOptions {
  path: string;
  /** e.g. 0o600, or 0o660 with --group */
  socketMode: number;
  handler: ControlHandler;
  /** register a subscriber; returns the unsubscribe function */
  onSubscribe: (node: string | null, push: (ev: EventRecord) => void) => () => void;
  limits: Limits;
  clock: Clock;
  log: Logger;
  version: string;
  /** events queued per slow subscriber before dropping (default 1024) */
  maxEventQueue?: number;
  /** concurrent control connections (default 256) */
  maxConnections?: number;
}

export interface ControlServer {
  readonly server: net.Server;
  readonly path: string;
  /** Stop listening, close every connection, unlink the socket. */
  close(): Promise<void>;
}

export const DEFAULT_MAX_EVENT_QUEUE = 1024;
const MAX_INBOX = 64;

type InboxItem = { kind: 'msg'; buf: Buffer } | { kind: 'fatal'; err: DstError; echo: NlMsgHeader | Buffer };

/** A gap in the event stream: `count` records dropped, the last one with seq `lastSeq`. */
interface LostMarker { lost: number; lastSeq: number }

export async function createControlServer(opts: ControlServerOptions): Promise<ControlServer> {
  checkSocketPath(opts.path, 'control socket path');
  const log = opts.log.child({ op: 'control' });
  const conns = new Set<Connection>();
  const server = net.createServer({ allowHalfOpen: false }, (socket) => {
    const c = new Connection(socket, opts, log, () => conns.delete(c));
    conns.add(c);
  });
  server.maxConnections = opts.maxConnections ?? 256;
  server.on('error', (err) => log.error(`control socket error: ${err.message}`, { errno: errnoOf(err) }));

  await listenUnix(server, opts.path);
  try {
    chmodSync(opts.path, opts.socketMode);
  } catch (err) {
    server.close();
    throw new DstError('DST_ERR_INTERNAL', `cannot chmod control socket ${opts.path}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
  }
  log.debug('listening', { path: opts.path, mode: opts.socketMode.toString(8) });

  let closing: Promise<void> | null = null;
  return {
    server,
    path: opts.path,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of conns) c.destroy();
      }).then(() => {
        try {
          unlinkSync(opts.path);
        } catch (err) {
          if (errnoOf(err) !== 'ENOENT') log.warn(`cannot unlink control socket: ${(err as Error).message}`, { errno: errnoOf(err) });
        }
      });
      return closing;
    },
  };
}

/** listen(); a stale socket file (nobody answers) is replaced, a live one is a clear error. */
async function listenUnix(server: net.Server, path: string): Promise<void> {
  const attempt = (): Promise<void> => new Promise((resolve, reject) => {
    const onError = (err: Error): void => { server.off('listening', onListening); reject(err); };
    const onListening = (): void => { server.off('error', onError); resolve(); };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(path);
  });
  try {
    await attempt();
  } catch (err) {
    if (errnoOf(err) !== 'EADDRINUSE') {
      throw new DstError('DST_ERR_INTERNAL', `cannot listen on control socket ${path}: ${(err as Error).message}`, { errno: errnoOf(err), cause: err });
    }
    await removeStaleSocket(path, { what: 'control socket', live: 'another engine is already listening on' });
    try {
      await attempt();
    } catch (err2) {
      throw new DstError('DST_ERR_BUSY', `cannot listen on control socket ${path}: ${(err2 as Error).message}`, { errno: errnoOf(err2), cause: err2 });
    }
  }
}

class Connection {
  private readonly framer: NlFramer;
  private partialTimer: TimerHandle | null = null;
  private readonly inbox: InboxItem[] = [];
  private pumping = false;
  private dead = false; // no more input is processed (fatal queued, or closed)
  private closed = false;
  private paused = false;
  private sub: { seq: number; node: string | null; queue: (EventRecord | LostMarker)[]; unsubscribe: (() => void) | null } | null = null;

  constructor(
    private readonly socket: net.Socket,
    private readonly opts: ControlServerOptions,
    private readonly log: Logger,
    private readonly onGone: () => void,
  ) {
    this.framer = new NlFramer(opts.limits.maxControlMessage);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug(`control connection error: ${err.message}`, { errno: errnoOf(err) }));
    socket.on('close', () => this.onClose());
    socket.on('drain', () => this.flushEvents());
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    let msgs: Buffer[];
    try {
      msgs = this.framer.push(chunk);
    } catch (err) {
      this.cancelPartialTimer();
      this.fatal(err as DstError, this.framer.partialHeader());
      return;
    }
    if (msgs.length) this.cancelPartialTimer();
    for (const buf of msgs) this.inbox.push({ kind: 'msg', buf });
    if (this.framer.failure) {
      this.cancelPartialTimer();
      this.fatal(this.framer.failure, this.framer.partialHeader());
      return;
    }
    if (this.framer.pending > 0 && !this.partialTimer) {
      const ms = this.opts.limits.controlPartialTimeoutMs;
      this.partialTimer = this.opts.clock.setTimer(ms, () => {
        this.partialTimer = null;
        if (this.dead || this.closed) return;
        this.fatal(new DstError('DST_ERR_TIMEOUT', `partial control message (${this.framer.pending} bytes) not completed within ${ms} ms`, { errno: 'ETIMEDOUT' }), this.framer.partialHeader());
      });
    }
    if (this.inbox.length >= MAX_INBOX && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    void this.pump();
  }

  private cancelPartialTimer(): void {
    this.partialTimer?.cancel();
    this.partialTimer = null;
  }

  /** Queue an error reply + close, after the replies to requests already received. */
  private fatal(err: DstError, echo: NlMsgHeader | Buffer): void {
    if (this.dead) return;
    this.dead = true;
    this.inbox.push({ kind: 'fatal', err, echo });
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.inbox.length && !this.closed) {
        const item = this.inbox.shift()!;
        if (item.kind === 'fatal') {
          this.log.warn(`closing control connection: ${item.err.message}`, { errno: item.err.errno });
          this.write(errorReply(item.err, item.echo));
          this.socket.end(() => this.socket.destroy());
          this.inbox.length = 0;
          break;
        }
        await this.handle(item.buf);
        if (this.socket.writableNeedDrain) await this.drained();
        if (this.paused && this.inbox.length < MAX_INBOX / 2 && !this.dead) {
          this.paused = false;
          this.socket.resume();
        }
      }
    } catch (err) {
      // a bug, not a peer's fault: log it, drop this connection, keep the engine up
      this.log.error(`control connection failed: ${(err as Error)?.stack ?? String(err)}`);
      this.socket.destroy();
    } finally {
      this.pumping = false;
    }
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed || this.socket.destroyed) { resolve(); return; }
      const done = (): void => { this.socket.off('drain', done); this.socket.off('close', done); resolve(); };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  private write(buf: Buffer): void {
    if (!this.closed && !this.socket.destroyed && this.socket.writable) this.socket.write(buf);
  }

  private async handle(buf: Buffer): Promise<void> {
    const header = parseNlMsgHeader(buf).x;
    let spec: AnyCommandSpec;
    let args: object;
    try {
      if (header.type !== DST_FAMILY_ID) {
        throw new DstError('DST_ERR_BAD_FRAME', `unknown message type 0x${header.type.toString(16)} (the dst family id is 0x${DST_FAMILY_ID.toString(16)})`, { errno: 'EINVAL' });
      }
      if (!(header.flags & NLM_F_REQUEST)) throw new DstError('DST_ERR_BAD_FRAME', 'message without NLM_F_REQUEST', { errno: 'EINVAL' });
      const { x: genl, consumed } = parseGenlHeader(buf.subarray(NLMSG_HDRLEN));
      if (genl.version !== DST_GENL_VERSION) {
        throw new DstError('DST_ERR_BAD_FRAME', `generic netlink version ${genl.version} is not supported (expected ${DST_GENL_VERSION})`, { errno: 'EINVAL' });
      }
      const found = commandByNumber(genl.cmd);
      if (!found) throw new DstError('DST_ERR_BAD_FRAME', `unknown dst command ${genl.cmd}`, { errno: 'EOPNOTSUPP' });
      spec = found;
      args = decodeObject(spec.args as unknown as AnySchema as never, buf.subarray(NLMSG_HDRLEN + consumed)) as object;
    } catch (err) {
      const e = err instanceof DstError ? err : new DstError('DST_ERR_BAD_FRAME', String((err as Error)?.message ?? err), { errno: 'EINVAL' });
      this.fatal(e, header);
      return;
    }

    if (this.sub) {
      this.write(errorReply(new DstError('DST_ERR_STATE', `this control connection is subscribed to events; ${spec.name} needs another connection`, { errno: 'EBUSY' }), header));
      return;
    }
    if (spec.name === 'subscribe') {
      this.subscribe(header, (args as { node: string | null }).node);
      return;
    }

    let result: object | object[];
    try {
      result = spec.name === 'hello'
        ? { version: this.opts.version, pid: process.pid }
        : await this.opts.handler(spec.name, args, {});
    } catch (err) {
      if (!(err instanceof DstError)) this.log.error(`${spec.name} failed: ${(err as Error)?.stack ?? String(err)}`, { errno: errnoOf(err) });
      else this.log.debug(`${spec.name} refused: ${err.message}`, { code: err.code, errno: err.errno });
      this.write(errorReply(err, header));
      return;
    }
    let out: Buffer[];
    try {
      out = this.encodeReply(spec, header, result);
    } catch (err) {
      this.log.error(`${spec.name}: cannot encode the result: ${(err as Error).message}`);
      const e = new DstError('DST_ERR_INTERNAL', `${spec.name}: the engine produced a result it cannot encode: ${(err as Error).message}`,
        { errno: err instanceof DstError && err.errno === 'EMSGSIZE' ? 'EMSGSIZE' : 'EIO' });
      this.write(errorReply(e, header));
      return;
    }
    for (const b of out) this.write(b);
  }

  private encodeReply(spec: AnyCommandSpec, req: NlMsgHeader, result: object | object[]): Buffer[] {
    const reply = spec.reply as { kind: 'object' | 'wrapped' | 'dump' | 'stream'; schema?: AnySchema; item?: AnySchema; key?: string };
    const msg = (flags: number, attrs: Buffer): Buffer => {
      const b = formatGenlMessage({ type: DST_FAMILY_ID, flags, seq: req.seq, cmd: spec.cmd, attrs });
      if (b.length > this.opts.limits.maxControlMessage) {
        throw new DstError('DST_ERR_INTERNAL', `reply of ${b.length} bytes exceeds the control message limit (${this.opts.limits.maxControlMessage})`, { errno: 'EMSGSIZE' });
      }
      return b;
    };
    switch (reply.kind) {
      case 'dump': {
        if (!Array.isArray(result)) throw new DstError('DST_ERR_INTERNAL', `${spec.name} must produce an array`);
        const parts = result.map((item) => msg(NLM_F_MULTI, encodeObject(reply.item as never, item as never)));
        parts.push(formatDone({ seq: req.seq }));
        return parts;
      }
      case 'wrapped': {
        if (!Array.isArray(result)) throw new DstError('DST_ERR_INTERNAL', `${spec.name} must produce an array`);
        return this.withAck(req, [msg(0, encodeObject(reply.schema as never, { [reply.key!]: result } as never))]);
      }
      default: {
        if (Array.isArray(result)) throw new DstError('DST_ERR_INTERNAL', `${spec.name} must produce an object, not an array`);
        return this.withAck(req, [msg(0, encodeObject(reply.schema as never, result as never))]);
      }
    }
  }

  private withAck(req: NlMsgHeader, msgs: Buffer[]): Buffer[] {
    if (req.flags & NLM_F_ACK) msgs.push(formatError({ errno: 0, request: req }));
    return msgs;
  }

  // ---- event stream ----
  private subscribe(req: NlMsgHeader, node: string | null): void {
    this.sub = { seq: req.seq, node, queue: [], unsubscribe: null };
    const first: EventRecord = { seq: 0, ts: Date.now(), node, event: 'subscribed' };
    this.write(formatGenlMessage({ type: DST_FAMILY_ID, flags: NLM_F_MULTI, seq: req.seq, cmd: DST_CMD.SUBSCRIBE, attrs: encodeObject(eventRecordSchema, first) }));
    this.log.debug('subscribed', { node: node ?? undefined });
    const unsubscribe = this.opts.onSubscribe(node, (ev) => this.pushEvent(ev));
    if (this.closed) unsubscribe();
    else this.sub.unsubscribe = unsubscribe;
  }

  private pushEvent(ev: EventRecord): void {
    const sub = this.sub;
    if (!sub || this.closed || this.dead) return;
    const max = this.opts.maxEventQueue ?? DEFAULT_MAX_EVENT_QUEUE;
    if (sub.queue.length === 0 && !this.socket.writableNeedDrain) {
      this.writeEvent(ev);
      return;
    }
    if (sub.queue.length < max) {
      sub.queue.push(ev);
      return;
    }
    // full: count the drop in a gap marker at the tail (the queue holds at most max + 1 items)
    const tail = sub.queue[sub.queue.length - 1]!;
    if ('lost' in tail) {
      tail.lost++;
      tail.lastSeq = ev.seq;
    } else {
      sub.queue.push({ lost: 1, lastSeq: ev.seq });
    }
  }

  private flushEvents(): void {
    const sub = this.sub;
    if (!sub) return;
    while (sub.queue.length && !this.socket.writableNeedDrain && !this.closed) {
      const item = sub.queue.shift()!;
      if ('lost' in item) {
        this.log.warn(`slow event reader: ${item.lost} events lost`, { node: sub.node ?? undefined });
        this.writeEvent({ seq: item.lastSeq, ts: Date.now(), node: sub.node, event: 'events-lost', count: item.lost });
      } else {
        this.writeEvent(item);
      }
    }
  }

  private writeEvent(ev: EventRecord): void {
    let attrs: Buffer;
    try {
      attrs = encodeObject(eventRecordSchema, ev);
    } catch (err) {
      this.log.warn(`dropping an event that cannot be encoded: ${(err as Error).message}`, { node: ev.node ?? undefined });
      return;
    }
    this.write(formatGenlMessage({ type: DST_FAMILY_ID, flags: NLM_F_MULTI, seq: this.sub!.seq, cmd: DST_CMD.EVENT, attrs }));
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.dead = true;
    this.cancelPartialTimer();
    this.inbox.length = 0;
    if (this.sub) {
      this.sub.unsubscribe?.();
      this.sub.unsubscribe = null;
      this.sub.queue.length = 0;
    }
    this.onGone();
  }
}

/** NLMSG_ERROR for any thrown value: -errno, echoed header, ext-ack message + DST_ERR_* code. */
export function errorReply(err: unknown, request: NlMsgHeader | Buffer): Buffer {
  const e = err instanceof DstError ? err : null;
  const code = e ? e.code : 'DST_ERR_INTERNAL';
  const errno = e ? (e.errno ?? 'EINVAL') : (errnoOf(err) ?? 'EINVAL');
  const message = err instanceof Error ? err.message : String(err);
  return formatError({ errno: errnoNumber(errno), request, message, code });
}
