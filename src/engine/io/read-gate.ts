// Pausing a socket we read from, the same way for the export's connections and the NBD endpoint's.
// A paused net.Socket keeps reading into its buffer up to its high-water mark, so a peer that
// closes (or PINGs) while we wait is still seen. A socket that reads into our buffers (adopt.ts)
// has no such buffer and would stop at once, so it keeps reading until READ_AHEAD bytes are held
// in our decoder; then it stops too.

/** Bytes still read and held while reading is paused (user-buffer sockets). */
export const READ_AHEAD = 64 * 1024;

export interface PausableSocket {
  pause(): unknown;
  resume(): unknown;
}

export class ReadGate {
  private paused = false;

  /**
   * userBuffer: the socket reads into our buffers (adopted), not 'data' events.
   * held: bytes read and not yet consumed (the decoder's).
   */
  constructor(private readonly socket: PausableSocket, private readonly userBuffer: boolean,
    private readonly held: () => number) {}

  get isPaused(): boolean {
    return this.paused;
  }

  /** Stop taking bytes (a user-buffer socket reads on up to READ_AHEAD held bytes). */
  pause(): void {
    this.paused = true;
    if (!this.userBuffer || this.held() >= READ_AHEAD) this.socket.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  /** After bytes were fed to the decoder: a paused user-buffer socket stops once READ_AHEAD are held. */
  afterRead(): void {
    if (this.paused && this.held() >= READ_AHEAD) this.socket.pause();
  }
}
