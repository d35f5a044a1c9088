// Where the control socket, runtime dir, state dir and config live (DESIGN §2).
import { join } from 'node:path';
import { DstError } from '../util/errors.js';

const env = process.env;
const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

export function defaultSocketPath(): string {
  if (env.DST_SOCKET) return env.DST_SOCKET;
  if (isRoot()) return '/run/dst/dst.sock';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'dst', 'dst.sock');
  return `/tmp/dst-${process.getuid?.() ?? 0}/dst.sock`;
}

export function defaultStateDir(): string {
  if (isRoot()) return '/var/lib/dst';
  return join(env.XDG_STATE_HOME ?? join(env.HOME ?? '/tmp', '.local', 'state'), 'dst');
}

export function defaultConfigPath(): string {
  if (isRoot()) return '/etc/dst/dst.conf';
  return join(env.XDG_CONFIG_HOME ?? join(env.HOME ?? '/tmp', '.config'), 'dst', 'dst.conf');
}

/** Unix socket paths are limited to 107 bytes (sun_path minus NUL). */
export const MAX_SOCKET_PATH = 107;

export function checkSocketPath(path: string, what = 'socket path'): string {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new DstError('DST_ERR_INVALID', `${what} ${path} is ${Buffer.byteLength(path)} bytes; unix sockets allow at most ${MAX_SOCKET_PATH}`, { errno: 'ENAMETOOLONG' });
  }
  return path;
}

export function nbdSocketPath(runtimeDir: string, name: string): string {
  return join(runtimeDir, 'nbd', `${name}.sock`);
}
