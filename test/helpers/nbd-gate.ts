// A unix-socket gate in front of an NBD server for the NBD-backend tests (issue 17): while open it
// forwards each connection to the server, else it accepts and closes at once (a refused attempt
// counted without sleeps); `shut` also cuts what is open; `freeze` makes the connections open now
// stop passing the server's bytes back (a hung server whose TCP stays up), new ones forward again;
// `retarget` sends new connections to another server (one of another size).
import net, { type Socket } from 'node:net';

export interface NbdGate {
  /** toServer: bytes forwarded from the clients to the server */
  readonly state: { open: boolean; accepted: number; toServer: number };
  /** refuse new connections and cut the ones open */
  shut(): void;
  /** the connections open now stop carrying the server's replies */
  freeze(): void;
  /** new connections go to this server instead */
  retarget(path: string): void;
}

export async function nbdGate(t: { after(fn: () => unknown): void }, path: string, target: string): Promise<NbdGate> {
  const live = new Set<Socket>();
  const frozen = new Set<Socket>();
  const state = { open: true, accepted: 0, toServer: 0 };
  let to = target;
  const server = net.createServer((c) => {
    state.accepted++;
    if (!state.open) { c.destroy(); return; }
    const up = net.connect(to);
    live.add(c).add(up);
    const drop = (): void => { c.destroy(); up.destroy(); live.delete(c); live.delete(up); frozen.delete(c); };
    c.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
    c.on('data', (b: Buffer) => { state.toServer += b.length; up.write(b); });
    up.on('data', (b: Buffer) => { if (!frozen.has(c)) c.write(b); });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => new Promise<void>((resolve) => { for (const s of live) s.destroy(); server.close(() => resolve()); }));
  return {
    state,
    shut(): void {
      state.open = false;
      for (const s of live) s.destroy();
    },
    freeze(): void {
      for (const s of live) frozen.add(s);
    },
    retarget(path: string): void {
      to = path;
    },
  };
}
