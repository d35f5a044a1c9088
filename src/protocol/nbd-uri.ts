// NBD URIs (the NBD URI standard, NetworkBlockDevice/nbd doc/uri.md) as an export's --disk:
// nbd://HOST[:PORT]/EXPORT (TCP, port 10809 by default) and nbd+unix:///EXPORT?socket=PATH. Pure:
// a disk that starts with one of these schemes is a URI, never a path; anything wrong in it is a
// DstError naming the URI. TLS schemes (nbds://) are refused: the backend has no TLS.
import { DstError } from '../util/errors.js';
import { MAX_STRING } from './nbd.js';

export const NBD_DEFAULT_PORT = 10809;

export type NbdUri =
  | { transport: 'tcp'; host: string; port: number; exportName: string; text: string }
  | { transport: 'unix'; socket: string; exportName: string; text: string };

/** Whether a --disk value is an NBD URI (then it is never made absolute, locked or created). */
export function isNbdUri(disk: string): boolean {
  return /^nbds?(\+(unix|tcp|vsock))?:\/\//i.test(disk);
}

function bad(text: string, why: string): DstError {
  return new DstError('DST_ERR_INVALID', `NBD URI ${text}: ${why}`, { errno: 'EINVAL' });
}

/** Parse an NBD URI; throws DST_ERR_INVALID (EINVAL) naming it and what is wrong. */
export function parseNbdUri(text: string): NbdUri {
  const scheme = /^([a-z+]+):\/\//i.exec(text)?.[1]?.toLowerCase();
  if (scheme === 'nbds' || scheme === 'nbds+unix' || scheme === 'nbds+tcp') throw bad(text, 'TLS (nbds) is not supported; use nbd:// or nbd+unix://');
  if (scheme !== 'nbd' && scheme !== 'nbd+tcp' && scheme !== 'nbd+unix') throw bad(text, 'the scheme must be nbd:// or nbd+unix://');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad(text, 'not a valid URI');
  }
  if (url.username !== '' || url.password !== '') throw bad(text, 'user names and passwords are not supported');
  if (url.hash !== '') throw bad(text, 'a fragment (#...) is not allowed');
  let exportName: string;
  try {
    exportName = decodeURIComponent(url.pathname.replace(/^\//, ''));
  } catch {
    throw bad(text, 'the export name is not valid percent-encoding');
  }
  if (Buffer.byteLength(exportName, 'utf8') > MAX_STRING) throw bad(text, `the export name is longer than ${MAX_STRING} bytes`);
  const params = [...url.searchParams.keys()];
  if (scheme === 'nbd+unix') {
    if (url.host !== '') throw bad(text, 'nbd+unix:// takes no host (nbd+unix:///EXPORT?socket=PATH)');
    const socket = url.searchParams.get('socket');
    if (socket === null || socket === '') throw bad(text, 'nbd+unix:// needs ?socket=PATH');
    if (!socket.startsWith('/')) throw bad(text, `socket ${socket} must be an absolute path`);
    const other = params.filter((k) => k !== 'socket');
    if (other.length > 0 || url.searchParams.getAll('socket').length > 1) throw bad(text, `unsupported query ${url.search}`);
    return { transport: 'unix', socket, exportName, text };
  }
  if (params.length > 0) throw bad(text, `unsupported query ${url.search}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw bad(text, 'no host (nbd://HOST[:PORT]/EXPORT)');
  const port = url.port === '' ? NBD_DEFAULT_PORT : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(text, `port ${url.port} is out of range`);
  return { transport: 'tcp', host, port, exportName, text };
}
