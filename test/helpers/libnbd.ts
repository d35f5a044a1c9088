// libnbd's Python binding (Debian's python3-libnbd, the module behind nbdsh) as an NBD client for
// tests that need what test/helpers/nbd-client.ts does not send: WRITE_ZEROES with NO_HOLE or
// FAST_ZERO, structured replies, the server's flags as libnbd sees them. A script runs against one
// nbd URI and prints one JSON document.
//
//   const py = await requireLibnbd(t); if (!py) return;
//   const r = await libnbd<{ ms: number }>(py, uri, 't = time.monotonic()\nh.zero(1 << 20, 0)\nout["ms"] = ...');
import type { TestContext } from 'node:test';
import { requireTool, run, skipOrFail, which } from './tools.js';

let found: string | null | undefined;

/** The python3 that imports libnbd's `nbd` module (Debian's /usr/bin/python3 before any other on PATH), or null. */
async function findPython(): Promise<string | null> {
  if (found !== undefined) return found;
  const candidates = ['/usr/bin/python3', which('python3')].filter((p): p is string => p !== null);
  for (const p of new Set(candidates)) {
    const r = await run(p, ['-c', 'import nbd'], { timeoutMs: 15_000 });
    if (r.code === 0) return (found = p);
  }
  return (found = null);
}

/**
 * The python3 that can `import nbd`; otherwise skips (or fails under CI) naming python3-libnbd and
 * returns null.
 */
export async function requireLibnbd(t: TestContext): Promise<string | null> {
  if (!requireTool(t, 'nbdsh', 'python3-libnbd')) return null;
  const py = await findPython();
  if (py) return py;
  skipOrFail(t, 'no python3 on this machine imports libnbd\'s nbd module: install the Debian package python3-libnbd (apt-get install python3-libnbd; .ci/run does)');
  return null;
}

const PRELUDE = `
import errno, json, sys, time
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
out = {}
def fill(n, seed):
    # a non-zero pattern of n bytes (n a multiple of 8)
    return (seed.to_bytes(4, 'big') + b'\\xa5\\x5a\\xc3\\x3c') * (n // 8)
def is_zero(offset, length, step=4 << 20):
    z = bytes(step)
    at = offset
    while at < offset + length:
        n = min(step, offset + length - at)
        if h.pread(n, at) != z[:n]:
            return False
        at += n
    return True
def pwrite_all(offset, length, seed, chunk=4 << 20, depth=8):
    # length (a multiple of chunk) bytes of fill() at offset, \`depth\` requests in flight, then a flush
    buf = nbd.Buffer.from_bytearray(bytearray(fill(chunk, seed)))
    at = offset
    pending = []
    while at < offset + length or pending:
        while at < offset + length and len(pending) < depth:
            pending.append(h.aio_pwrite(buf, at))
            at += chunk
        h.poll(-1)
        pending = [c for c in pending if not h.aio_command_completed(c)]
    h.flush()
`;

/**
 * Run `script` (Python, top level) after the prelude above: `h` is connected to `uri`, `out` is a
 * dict printed as JSON at the end. A Python exception fails the call with its traceback.
 */
export async function libnbd<T = Record<string, unknown>>(python: string, uri: string, script: string, timeoutMs = 120_000): Promise<T> {
  const code = `${PRELUDE}\n${script}\nh.shutdown()\nprint(json.dumps(out))\n`;
  const r = await run(python, ['-c', code, uri], { timeoutMs });
  if (r.code !== 0) {
    throw new Error(`libnbd script against ${uri}: ${r.timedOut ? `timed out after ${r.ms} ms` : `exited ${r.code}`}\n--- script ---\n${script}\n--- stderr ---\n${r.stderr.trimEnd()}`);
  }
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as T;
}
