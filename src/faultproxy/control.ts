// The fault proxy's control socket: a one-line text protocol over a unix stream socket.
//
// Request: one line (≤ 64 KiB, "\n"-terminated) of whitespace-separated words; a word may be written
// as a JSON string ("a b") to hold spaces. Reply: one line, either a JSON object or `error: MESSAGE`.
// A connection may send several requests; replies come in order. Commands:
//   pass | delay MS | stall | cut [rst] | corrupt offset N [DIR] | corrupt every N [DIR] | corrupt off
//   refuse | accept | inject FILE [DIR] [conn=ID] [from=ID] | status | help
// DIR ∈ up|down|both (up = client → target; default up). MS is a duration (bare = ms, or 5s).
// Every successful command replies with the proxy's status object (inject adds `inject: {bytes, connections}`).
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { realClock, type Clock } from '../util/clock.js';
import { DstError } from '../util/errors.js';
import { parseDuration, parseSize } from '../util/parse.js';
import { silentLogger, type Logger } from '../util/log.js';
import type { DirSpec, FaultProxy } from './proxy.js';
import { removeStaleSocket } from '../engine/io/unix-socket.js';

export const MAX_CONTROL_LINE = 64 * 1024;
export const DEFAULT_CTL_TIMEOUT_MS = 5000;
const MAX_SOCKET_PATH = 107;

export const CONTROL_COMMANDS: readonly string[] = [
  'pass',
  'delay MS',
  'stall',
  'cut [rst]',
  'corrupt offset N [up|down|both]',
  'corrupt every N [up|down|both]',
  'corrupt off',
  'refuse',
  'accept',
  'inject FILE [up|down|both] [conn=ID] [from=ID]',
  'status',
  'help',
];

/** Split a command line into words; "double quoted" words are JSON strings. */
export function splitCommand(line: string): string[] {
  const words: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|[^\s"]+)(?=\s|$)/y;
  let pos = 0;
  for (;;) {
    re.lastIndex = pos;
    const m = re.exec(line);
    if (!m) break;
    pos = re.lastIndex;
    const w = m[1]!;
    if (w.startsWith('"')) {
      try {
        words.push(JSON.parse(w) as string);
      } catch {
        throw new DstError('DST_ERR_INVALID', `bad quoted word ${w}`);
      }
    } else {
      words.push(w);
    }
  }
  if (line.slice(pos).trim() !== '') throw new DstError('DST_ERR_INVALID', `bad quoting in ${JSON.stringify(line)}`);
  return words;
}

/** Join words into one command line, quoting those that need it. */
export function joinCommand(words: readonly string[]): string {
  return words.map((w) => (w === '' || /[\s"\\]/.test(w) ? JSON.stringify(w) : w)).join(' ');
}

function usage(msg: string): DstError {
  return new DstError('DST_ERR_USAGE', msg);
}

function arity(words: string[], min: number, max: number, form: string): void {
  if (words.length - 1 < min || words.length - 1 > max) throw usage(`usage: ${form}`);
}

function dirArg(word: string | undefined): DirSpec {
  if (word === undefined) return 'up';
  if (word === 'up' || word === 'down' || word === 'both') return word;
  throw new DstError('DST_ERR_INVALID', `invalid direction ${JSON.stringify(word)}: expected up, down or both`);
}

function idArg(word: string, what: string): number {
  if (!/^\d{1,10}$/.test(word)) throw new DstError('DST_ERR_INVALID', `invalid ${what} ${JSON.stringify(word)}: expected a connection id`);
  return Number(word);
}

/** Run one command line against a proxy; returns the JSON reply object. Throws DstError. */
export async function executeCommand(proxy: FaultProxy, line: string): Promise<Record<string, unknown>> {
  const words = splitCommand(line);
  const cmd = (words[0] ?? '').toLowerCase();
  switch (cmd) {
    case 'pass':
      arity(words, 0, 0, 'pass');
      proxy.pass();
      break;
    case 'delay':
      arity(words, 1, 1, 'delay MS');
      proxy.delay(parseDuration(words[1], 'delay'));
      break;
    case 'stall':
      arity(words, 0, 0, 'stall');
      proxy.stall();
      break;
    case 'cut': {
      arity(words, 0, 1, 'cut [rst]');
      if (words[1] !== undefined && words[1] !== 'rst') throw usage(`usage: cut [rst] (got ${JSON.stringify(words[1])})`);
      const n = proxy.cut({ reset: words[1] === 'rst' });
      return { ...proxy.status(), cut: n };
    }
    case 'corrupt': {
      const kind = words[1];
      if (kind === 'off') {
        arity(words, 1, 1, 'corrupt off');
        proxy.corruptOff();
      } else if (kind === 'offset') {
        arity(words, 2, 3, 'corrupt offset N [up|down|both]');
        proxy.corruptAt(parseSize(words[2], 'offset'), dirArg(words[3]));
      } else if (kind === 'every') {
        arity(words, 2, 3, 'corrupt every N [up|down|both]');
        const n = parseSize(words[2], 'corrupt interval');
        if (n < 1) throw new DstError('DST_ERR_INVALID', 'invalid corrupt interval 0: must be ≥ 1');
        proxy.corruptEvery(n, dirArg(words[3]));
      } else {
        throw usage('usage: corrupt offset N [up|down|both] | corrupt every N [up|down|both] | corrupt off');
      }
      break;
    }
    case 'refuse':
      arity(words, 0, 0, 'refuse');
      proxy.refuse();
      break;
    case 'accept':
      arity(words, 0, 0, 'accept');
      proxy.accept();
      break;
    case 'inject': {
      const form = 'inject FILE [up|down|both] [conn=ID] [from=ID]';
      arity(words, 1, 4, form);
      let dir: DirSpec = 'up';
      const opts: { connection?: number; fromConnection?: number } = {};
      let sawDir = false;
      for (const w of words.slice(2)) {
        if (w.startsWith('conn=')) opts.connection = idArg(w.slice(5), 'conn');
        else if (w.startsWith('from=')) opts.fromConnection = idArg(w.slice(5), 'from');
        else if (!sawDir) { dir = dirArg(w); sawDir = true; }
        else throw usage(`usage: ${form}`);
      }
      const r = await proxy.inject(resolvePath(words[1]!), dir, opts);
      return { ...proxy.status(), inject: r };
    }
    case 'status':
      arity(words, 0, 0, 'status');
      break;
    case 'help':
      return { commands: CONTROL_COMMANDS };
    case '':
      throw usage(`empty command; commands: ${CONTROL_COMMANDS.join(', ')}`);
    default:
      throw usage(`unknown command ${JSON.stringify(words[0])}; commands: ${CONTROL_COMMANDS.join(', ')}`);
  }
  return { ...proxy.status() };
}

function oneLine(msg: string): string {
  return msg.replace(/[\r\n]+/g, ' ');
}

export interface ControlServerOptions {
  logger?: Logger;
}

/** Serves the control protocol for one proxy on a unix socket (mode 0600). */
export class ControlServer {
  readonly path: string;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly log: Logger;
  private listening = false;
  private closing: Promise<void> | null = null;

  constructor(readonly proxy: FaultProxy, path: string, opts: ControlServerOptions = {}) {
    this.path = resolvePath(path);
    this.log = opts.logger ?? silentLogger;
    this.server = net.createServer({ allowHalfOpen: true }, (sock) => this.onConnection(sock));
    this.server.on('error', (err) => this.log.error('control socket error', { op: 'fault-proxy', error: err.message }));
  }

  async start(): Promise<void> {
    if (Buffer.byteLength(this.path) > MAX_SOCKET_PATH) {
      throw new DstError('DST_ERR_INVALID', `control socket path ${this.path} is longer than ${MAX_SOCKET_PATH} bytes`);
    }
    await removeStaleSocket(this.path, { what: 'fault-proxy control socket', live: 'another process is using' });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        const code = (err as { code?: string }).code ?? null;
        reject(new DstError(code === 'EADDRINUSE' ? 'DST_ERR_BUSY' : 'DST_ERR_IO',
          `cannot listen on control socket ${this.path}: ${err.message}`, { cause: err, errno: code }));
      };
      this.server.once('error', onError);
      this.server.listen(this.path, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.listening = true;
    chmodSync(this.path, 0o600);
    this.log.info('control socket ready', { op: 'fault-proxy', socket: this.path });
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      for (const s of this.sockets) s.destroy();
      if (this.listening) {
        await new Promise<void>((resolve) => this.server.close(() => resolve()));
        // net.Server unlinks its unix socket on close; be sure, without touching anything else.
        try {
          if (lstatSync(this.path).isSocket()) unlinkSync(this.path);
        } catch {
          // already gone
        }
      }
    })();
    return this.closing;
  }

  private onConnection(sock: net.Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    let busy = Promise.resolve();
    sock.setEncoding('utf8');
    sock.on('data', (text: string) => {
      buf += text;
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) break;
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        busy = busy.then(() => this.answer(sock, line));
      }
      if (buf.length > MAX_CONTROL_LINE) {
        sock.end(`error: command line longer than ${MAX_CONTROL_LINE} bytes\n`);
        buf = '';
        sock.destroySoon();
      }
    });
    sock.on('end', () => {
      // A last line without "\n" is still a command.
      if (buf.trim() !== '') {
        const line = buf;
        buf = '';
        busy = busy.then(() => this.answer(sock, line));
      }
      void busy.then(() => sock.end());
    });
  }

  private async answer(sock: net.Socket, line: string): Promise<void> {
    let reply: string;
    try {
      reply = JSON.stringify(await executeCommand(this.proxy, line));
      this.log.debug('control command', { op: 'fault-proxy', command: line });
    } catch (err) {
      reply = `error: ${oneLine((err as Error).message)}`;
      this.log.debug('control command failed', { op: 'fault-proxy', command: line, error: (err as Error).message });
    }
    if (!sock.destroyed && sock.writable) sock.write(reply + '\n');
  }
}

export interface ControlRequestOptions {
  timeoutMs?: number;
  /** timers (default the real clock) */
  clock?: Clock;
}

/**
 * Send one command to a fault proxy's control socket and return its reply line.
 * An `error: …` reply, no proxy at the socket, or a timeout → DstError.
 */
export async function controlRequestRaw(socketPath: string, command: string | readonly string[],
  opts: ControlRequestOptions = {}): Promise<string> {
  const line = typeof command === 'string' ? command : joinCommand(command);
  if (line.includes('\n')) throw new DstError('DST_ERR_USAGE', 'a control command is one line');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CTL_TIMEOUT_MS;
  const path = resolvePath(socketPath);
  const reply = await new Promise<string>((resolve, reject) => {
    const sock = net.connect(path);
    let buf = '';
    let done = false;
    const finish = (err: Error | null, value?: string): void => {
      if (done) return;
      done = true;
      timer.cancel();
      sock.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = (opts.clock ?? realClock).setTimer(timeoutMs, () => finish(new DstError('DST_ERR_TIMEOUT',
      `fault-proxy control ${path}: no reply to ${JSON.stringify(line)} within ${timeoutMs} ms`)));
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(line + '\n'));
    sock.on('data', (text: string) => {
      buf += text;
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish(null, buf.slice(0, nl));
      else if (buf.length > 16 * 1024 * 1024) finish(new DstError('DST_ERR_BAD_FRAME', `fault-proxy control ${path}: reply too long`));
    });
    sock.on('end', () => finish(new DstError('DST_ERR_CONN_LOST', `fault-proxy control ${path}: closed without a reply`)));
    sock.on('error', (err: Error & { code?: string }) => {
      const code = err.code ?? null;
      if (code === 'ENOENT' || code === 'ECONNREFUSED') {
        finish(new DstError('DST_ERR_NO_ENGINE', `no fault proxy listening on control socket ${path} (${code})`, { cause: err, errno: code }));
      } else {
        finish(new DstError('DST_ERR_IO', `fault-proxy control ${path}: ${err.message}`, { cause: err, errno: code }));
      }
    });
  });
  if (reply.startsWith('error:')) {
    const msg = reply.slice('error:'.length).trim();
    throw new DstError(/^(unknown command|usage:|empty command)/.test(msg) ? 'DST_ERR_USAGE' : 'DST_ERR_INVALID',
      `fault-proxy: ${msg}`);
  }
  return reply;
}

/** As controlRequestRaw, with the JSON reply parsed. */
export async function controlRequest(socketPath: string, command: string | readonly string[],
  opts: ControlRequestOptions = {}): Promise<Record<string, unknown>> {
  const reply = await controlRequestRaw(socketPath, command, opts);
  try {
    return JSON.parse(reply) as Record<string, unknown>;
  } catch (err) {
    throw new DstError('DST_ERR_BAD_FRAME', `fault-proxy control: reply is not JSON: ${reply.slice(0, 200)}`, { cause: err });
  }
}
