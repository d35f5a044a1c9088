// A remote Connection on a FakeClock with an in-memory socket: the test plays the export
// (test/unit/remote-conn-*.test.ts). Nothing sleeps.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { DEFAULT_POLICY, type CryptoConfig, type Policy } from '../../src/engine/types.js';
import { Cmd, FrameDecoder, encodeFrame, encodeHelloReply, type Frame, type FrameInit } from '../../src/protocol/wire.js';
import { Connection, type WireSocket } from '../../src/engine/remote/connection.js';
import { ConnState, type ConnCloseInfo } from '../../src/engine/remote/conn-state.js';

export const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

/** In-memory socket: records frames written, lets the test play the export. */
export class FakeSocket extends EventEmitter implements WireSocket {
  readonly frames: Frame[] = [];
  private readonly dec = new FrameDecoder();
  destroyed = false;
  ended = false;
  /** called for each frame the client writes (the fake export) */
  onFrame: ((f: Frame, s: FakeSocket) => void) | null = null;
  write(chunk: Buffer): boolean {
    this.dec.feed(chunk);
    for (let f = this.dec.next(); f; f = this.dec.next()) {
      this.frames.push(f);
      const cb = this.onFrame;
      if (cb) { const fr = f; queueMicrotask(() => cb(fr, this)); }
    }
    return true;
  }
  cork(): void {}
  uncork(): void {}
  end(): void { this.ended = true; }
  destroy(): void { this.destroyed = true; }
  setNoDelay(): this { return this; }
  send(f: FrameInit): void { this.emit('data', Buffer.concat(encodeFrame(f))); }
  count(cmd: Cmd): number { return this.frames.filter((f) => f.cmd === cmd).length; }
}

export const IDENTITY = Buffer.alloc(16, 0xab);
export function helloReply(over: { identity?: Buffer; size?: number; suite?: string; granted?: number } = {}): FrameInit {
  return {
    cmd: Cmd.HELLO_REPLY,
    payload: encodeHelloReply({ identity: over.identity ?? IDENTITY, size: over.size ?? 1 << 20, blockSize: 512,
      maxRequest: 1 << 20, granted: over.granted ?? 3, suite: over.suite ?? 'none', nonce: Buffer.alloc(32, 1), message: null, instance: null, features: 0 }),
  };
}

/** Fake export behaviour: answer HELLO and (optionally) PING. */
export function exportBehaviour(opts: { pong: boolean }) {
  return (f: Frame, s: FakeSocket) => {
    if (f.cmd === Cmd.HELLO) s.send(helloReply());
    else if (f.cmd === Cmd.PING && opts.pong) s.send({ cmd: Cmd.PONG, id: f.id });
  };
}

export function makeConn(over: Partial<Policy> = {}, crypto?: { config: CryptoConfig; key: Buffer | Error }) {
  const clock = new FakeClock();
  const policy: Policy = { ...DEFAULT_POLICY, ...over };
  const sock = new FakeSocket();
  const closes: ConnCloseInfo[] = [];
  const responses: Frame[] = [];
  let ready = 0;
  const state = { outstanding: false };
  const conn = new Connection({
    host: '127.0.0.1', port: 1, clock, log: silentLogger, policy: () => policy,
    exportName: 'vol', sessionId: Buffer.alloc(16, 7),
    outstanding: () => state.outstanding,
    onReady: () => { ready++; },
    onResponse: (f) => responses.push(f),
    onClose: (i) => closes.push(i),
    socketFactory: () => sock,
    ...(crypto ? {
      crypto: () => crypto.config,
      loadKey: async () => { if (crypto.key instanceof Error) throw crypto.key; return Buffer.from(crypto.key); },
    } : {}),
  });
  return { clock, policy, sock, conn, closes, responses, state, ready: () => ready };
}

export async function readyConn(over: Partial<Policy> = {}) {
  const c = makeConn(over);
  c.conn.start();
  c.sock.emit('connect');
  c.sock.send(helloReply());
  assert.equal(c.conn.state, ConnState.READY);
  return c;
}
