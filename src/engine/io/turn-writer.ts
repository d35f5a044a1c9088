// One writev per event-loop turn, for every socket the engine writes frames to (the export's
// connections, a remote's link, the NBD endpoint's clients): the first write of a turn corks the
// socket, a nextTick uncorks it. nextTick, not setImmediate: the replies of one socket event (a
// burst of IO_RESPONSEs) leave together, without an extra zero-timeout epoll_wait per turn.

/** The part of a socket the writer uses. */
export interface CorkableSocket {
  readonly destroyed?: boolean;
  write(chunk: Buffer, written?: (err?: Error | null) => void): boolean;
  cork(): void;
  uncork(): void;
}

export class TurnWriter {
  private corked = false;

  /** uncorked: runs after every uncork (a caller waiting for the socket's buffer to empty looks again) */
  constructor(private readonly socket: CorkableSocket, private readonly uncorked?: () => void) {}

  /** Queue parts for this turn's writev. written: the socket is done with the last part (written, or failed). */
  write(parts: Buffer | readonly Buffer[], written?: (err?: Error | null) => void): void {
    const s = this.socket;
    if (!this.corked) {
      this.corked = true;
      s.cork();
      process.nextTick(() => this.flush());
    }
    if (Buffer.isBuffer(parts)) {
      s.write(parts, written);
      return;
    }
    const last = parts.length - 1;
    for (let i = 0; i < last; i++) s.write(parts[i]!);
    s.write(parts[last]!, written);
  }

  /** Write what this turn queued now: also before an end or a destroy, which would drop it. */
  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    if (!this.socket.destroyed) this.socket.uncork();
    this.uncorked?.();
  }
}
