// One proxied connection: the client socket, its own socket to the target, and a pipe each way.
// A pipe is the FIFO of chunks received from its source and not yet written to its destination,
// each stamped with when it may leave; the proxy decides when (proxy.ts pump/flow).
import type net from 'node:net';
import type { TimerHandle } from '../util/clock.js';
import type { Direction } from './capture.js';

export interface Entry {
  data: Buffer;
  due: number;
}

export class Pipe {
  readonly queue: Entry[] = [];
  head = 0;
  /** bytes queued (held) */
  queued = 0;
  /** bytes received from the source so far: the absolute stream offset of the next byte */
  offset = 0;
  /** FIN received from the source */
  ended = false;
  /** FIN passed on to the destination */
  endSent = false;
  /** source paused by this pipe's flow control */
  paused = false;
  timer: TimerHandle | null = null;

  constructor(readonly dir: Direction, readonly src: net.Socket, readonly dst: net.Socket) {}

  get length(): number {
    return this.queue.length - this.head;
  }

  push(e: Entry): void {
    this.queue.push(e);
    this.queued += e.data.length;
  }

  peek(): Entry | undefined {
    return this.queue[this.head];
  }

  shift(): Entry {
    const e = this.queue[this.head]!;
    this.queue[this.head] = undefined as unknown as Entry;
    this.head++;
    this.queued -= e.data.length;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return e;
  }

  clear(): void {
    this.queue.length = 0;
    this.head = 0;
    this.queued = 0;
    this.timer?.cancel();
    this.timer = null;
  }
}

export class Connection {
  readonly up: Pipe;
  readonly down: Pipe;
  closed = false;

  constructor(readonly id: number, readonly client: net.Socket, readonly upstream: net.Socket, readonly peer: string) {
    this.up = new Pipe('up', client, upstream);
    this.down = new Pipe('down', upstream, client);
  }
}

export function destroySocket(s: net.Socket, reset: boolean): void {
  if (s.destroyed) return;
  if (reset) {
    try {
      s.resetAndDestroy();
      return;
    } catch {
      // not connected yet or not TCP: fall through to a plain destroy
    }
  }
  s.destroy();
}
