// The original utility's one-shot form, recognised when argv contains `-n`:
//   dst -n NAME -d DISK -a ADDR -p PORT [-s FILE] [-S SIZE] [-c CIPHER -C KEYFILE] [-x HASH [-H KEYFILE]] [-t N] [-T MS] [-R]
//   dst -n NAME -a ADDR -p PORT [-S SIZE] [-c ... -C ...] [-x ... -H ...] [-t N] [-T MS] [-R]
//   dst -n NAME -D
// Options are parsed like getopt("T:m:t:x:c:C:H:Dn:S:d:a:p:s:hR") (bundling, attached values).
// Everything is validated before the first request; if a later request fails, the node that was
// added is removed again and the original error is reported.
import { stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { AclEntry, CryptoSetArgs, NodeAddArgs, NodeShow } from '../engine/types.js';
import { errnoOf } from '../util/errors.js';
import { engineError, usage, type CommandContext } from './context.js';
import { optCipher, optHash, optHostPort, optInt, optName, optSize } from './args.js';
import { loadSecurityFile, strtoul0 } from './security.js';
import { warnSuite } from './crypto.js';
import { warnStart } from './node.js';
import { nodeLine } from './render.js';

const WITH_VALUE = new Set(['T', 'm', 't', 'x', 'c', 'C', 'H', 'n', 'S', 'd', 'a', 'p', 's']);
const FLAGS = new Set(['D', 'h', 'R']);
const DEFAULT_WAIT_MS = 10_000;

export const ONESHOT_USAGE = `Usage (the original utility's one-shot form):
  dst -n NAME -d DISK -a ADDR -p PORT [-s FILE] [-S SIZE] [-c CIPHER -C KEYFILE]
          [-x HASH [-H KEYFILE]] [-t N] [-T MS] [-R]       add an export node
  dst -n NAME -a ADDR -p PORT [-S SIZE] [-c ... -C ...] [-x ... -H ...] [-t N] [-T MS] [-R]
                                                           add a remote node
  dst -n NAME -R                                           start a node
  dst -n NAME -D                                           stop (drain) and delete a node

  -n NAME     node name                 -d DISK   file or block device to export
  -a ADDR     address to listen on (with -d) or to connect to
  -p PORT     port                      -S SIZE   size limit (0 = the disk's size)
  -s FILE     security file: "<perm> <address>" per line, perm 0 deny, 1 read, 2 write, 3 both
  -c CIPHER   aes-gcm, chacha20-poly1305, aes-cbc, aes-ctr (or gcm(aes), cbc(aes), ctr(aes))
  -C FILE     cipher key file           -x HASH   sha256, sha512, blake2b512 (or hmac(sha256), ...)
  -H FILE     hash key file (an HMAC)   -t N      crypto threads
  -T MS       resend timeout in ms      -R        start the node
  -D          stop and delete the node  -m N      accepted and ignored (requests split at max-request)
  --socket PATH, --json                 as for every dst command
`;

/** Does argv use the one-shot form? */
export function isOneShot(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (/^-[A-Za-z]*n/.test(a) && !a.startsWith('--')) {
      // `-n`, `-nNAME`, or a bundle ending in n (`-Rn NAME`): getopt-style
      const flags = a.slice(1);
      for (const ch of flags) {
        if (ch === 'n') return true;
        if (!FLAGS.has(ch)) break;
      }
    }
  }
  return false;
}

export interface OneShotOptions {
  opts: Map<string, string | true>;
  socket?: string;
  json: boolean;
}

/** getopt over the one-shot options, plus --socket PATH / --json / --help. */
export function parseOneShotArgv(argv: readonly string[]): OneShotOptions {
  const opts = new Map<string, string | true>();
  const out: OneShotOptions = { opts, json: false };
  const put = (k: string, v: string | true): void => {
    if (opts.has(k)) throw usage(`-${k} given twice`, { hint: 'run dst -h for the one-shot form' });
    opts.set(k, v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') { out.json = true; continue; }
    if (a === '--help') { put('h', true); continue; }
    if (a === '--socket' || a.startsWith('--socket=')) {
      const v = a === '--socket' ? argv[++i] : a.slice('--socket='.length);
      if (v === undefined || v === '') throw usage('--socket needs a PATH');
      out.socket = v;
      continue;
    }
    if (a.startsWith('--') || a === '-' || !a.startsWith('-')) {
      throw usage(`unexpected argument ${JSON.stringify(a)} in the one-shot form (dst -n NAME ...)`, { hint: 'run dst -h for the one-shot form, or dst --help for the commands' });
    }
    for (let j = 1; j < a.length; j++) {
      const c = a[j]!;
      if (WITH_VALUE.has(c)) {
        const v = j + 1 < a.length ? a.slice(j + 1) : argv[++i];
        if (v === undefined) throw usage(`option -${c} needs a value`, { hint: 'run dst -h for the one-shot form' });
        put(c, v);
        break;
      }
      if (FLAGS.has(c)) { put(c, true); continue; }
      throw usage(`unknown option -${c} in the one-shot form`, { hint: 'run dst -h for the one-shot form' });
    }
  }
  return out;
}

export interface OneShotPlan {
  name: string;
  delete: boolean;
  add: NodeAddArgs | null;
  acl: AclEntry[] | null;
  crypto: CryptoSetArgs | null;
  resendTimeoutMs: number | null;
  start: boolean;
  warnings: string[];
}

/** strtoull base 0 (the original's -S), or a size with K M G T. 0 = the disk's size (null). */
function oneShotSize(v: string): number | null {
  const n = strtoul0(v.trim());
  const bytes = Number.isNaN(n) ? optSize('-S', v) : n;
  if (!Number.isSafeInteger(bytes)) throw usage(`invalid size ${JSON.stringify(v)} for -S: too large`, { code: 'DST_ERR_INVALID' });
  return bytes === 0 ? null : bytes;
}

async function mustExist(option: string, path: string, what: string): Promise<void> {
  try {
    await stat(path);
  } catch (err) {
    const errno = errnoOf(err);
    throw usage(`${what} ${path} for ${option}: ${(err as Error).message}`,
      { code: errno === 'ENOENT' ? 'DST_ERR_NOT_FOUND' : 'DST_ERR_INVALID', errno, cause: err });
  }
}

/** Check everything (syntax, combinations, files) and build the requests; no request is sent. */
export async function planOneShot(o: Map<string, string | true>, abs: (p: string) => string): Promise<OneShotPlan> {
  const str = (k: string): string | undefined => {
    const v = o.get(k);
    return typeof v === 'string' ? v : undefined;
  };
  const has = (k: string): boolean => o.has(k);
  const name = optName(str('n'), 'node name (-n)');
  const plan: OneShotPlan = { name, delete: false, add: null, acl: null, crypto: null, resendTimeoutMs: null, start: has('R'), warnings: [] };

  if (has('D')) {
    const extra = [...o.keys()].filter((k) => k !== 'n' && k !== 'D');
    if (extra.length) throw usage(`-D (stop and delete) takes only -n NAME; remove ${extra.map((k) => '-' + k).join(' ')}`);
    plan.delete = true;
    return plan;
  }

  if (has('m')) {
    optInt('-m', str('m'), 1);
    plan.warnings.push('-m (max pages per request) is ignored: requests are split at the node\'s max-request (dst node set --max-request)');
  }

  // ---- the node to add ----
  const addr = str('a');
  const port = str('p');
  if (has('d') || has('a') || has('p')) {
    if (addr === undefined || port === undefined) {
      throw usage(has('d') ? '-d needs -a ADDR (to listen on) and -p PORT' : '-a ADDR and -p PORT go together');
    }
    if (addr === '') throw usage('-a needs an address');
    const hostPort = `${isIP(addr) === 6 ? `[${addr}]` : addr}:${port}`;
    const size = has('S') ? oneShotSize(str('S')!) : null;
    if (has('d')) {
      const disk = str('d')!;
      if (!disk) throw usage('-d needs a path');
      await mustExist('-d', abs(disk), 'disk');
      plan.add = { name, role: 'export', size, disk: abs(disk), listen: optHostPort('-a/-p', hostPort, true), readonly: false, create: null };
    } else {
      if (has('s')) throw usage('-s (security file) is for export nodes (-d DISK)');
      plan.add = { name, role: 'remote', size, remote: optHostPort('-a/-p', hostPort, false), export: null, nbdListen: null };
    }
  } else if (has('S')) {
    throw usage('-S SIZE is only used when adding a node (-d or -a/-p)');
  }

  // ---- ACL ----
  if (has('s')) {
    plan.acl = await loadSecurityFile(abs(str('s')!));
  } else if (plan.add?.role === 'export') {
    plan.warnings.push(`no security file (-s): no clients will be allowed to connect until you add one (dst security add ${name} --addr IP --perm rw)`);
  }

  // ---- crypto ----
  const crypto: CryptoSetArgs = { name };
  if (has('c') !== has('C')) throw usage(has('c') ? '-c CIPHER needs -C KEYFILE' : '-C KEYFILE needs -c CIPHER');
  if (has('c')) {
    crypto.cipher = optCipher('-c', str('c'));
    const key = abs(str('C')!);
    await mustExist('-C', key, 'cipher key file');
    crypto.cipherKeyFile = key;
  }
  if (has('H') && !has('x')) throw usage('-H KEYFILE needs -x HASH');
  if (has('x')) {
    const h = optHash('-x', str('x'));
    if (h.hmac && !has('H')) throw usage(`-x ${str('x')} is keyed: give -H KEYFILE`);
    crypto.hash = h.hash;
    if (has('H')) {
      const key = abs(str('H')!);
      await mustExist('-H', key, 'hash key file');
      crypto.hashKeyFile = key;
    }
  }
  const keyedHash = crypto.hash !== undefined && crypto.hash !== 'none' && crypto.hashKeyFile !== undefined;
  if ((crypto.cipher === 'aes-cbc' || crypto.cipher === 'aes-ctr') && !keyedHash) {
    throw usage(`-c ${str('c')} needs a keyed hash: add -x sha256 -H KEYFILE`);
  }
  if (has('t')) crypto.threads = optInt('-t', str('t'), 1);
  if (Object.keys(crypto).length > 1) plan.crypto = crypto;
  // an unkeyed digest (-x sha256 without -H) is warned about from crypto-set's answer (the suite)

  if (has('T')) plan.resendTimeoutMs = optInt('-T', str('T'), 1);

  if (!plan.add && !plan.acl && !plan.crypto && plan.resendTimeoutMs === null && !plan.start) {
    throw usage('nothing to do: give -d DISK -a ADDR -p PORT (export), -a ADDR -p PORT (remote), -R (start) or -D (delete)',
      { hint: 'run dst -h for the one-shot form' });
  }
  return plan;
}

/** Run the plan over one control connection; roll the add back if a later step fails. */
export async function runOneShot(ctx: CommandContext, plan: OneShotPlan): Promise<void> {
  for (const w of plan.warnings) ctx.warn(w);
  const { name } = plan;
  if (plan.delete) {
    const res = await ctx.session(async (request) => {
      await request('node-stop', { name, force: false });
      return request('node-del', { name });
    });
    ctx.print(res, (r) => `stopped and deleted ${r.name}`);
    return;
  }
  const final = await ctx.session(async (request) => {
    let added = false;
    let startTried = false;
    try {
      let node: NodeShow | null = null;
      if (plan.add) {
        node = await request('node-add', plan.add);
        added = true;
      }
      // after these the node from node-add is stale: show it again unless a later step answers it
      if (plan.acl) { await request('security-load', { name, entries: plan.acl }); node = null; }
      if (plan.crypto) { warnSuite(ctx, name, await request('crypto-set', plan.crypto)); node = null; }
      if (plan.resendTimeoutMs !== null) node = await request('node-set', { name, resendTimeoutMs: plan.resendTimeoutMs });
      if (plan.start) {
        startTried = true;
        node = await request('node-start', { name, waitMs: DEFAULT_WAIT_MS });
        warnStart(ctx, node, DEFAULT_WAIT_MS);
      }
      return node ?? await request('node-show', { name });
    } catch (err) {
      if (added) await rollback(ctx, request, name, startTried);
      throw engineError(err);
    }
  });
  ctx.print(final, (n) => nodeLine(ctx.chalk, n));
}

async function rollback(ctx: CommandContext, request: Parameters<Parameters<CommandContext['session']>[0]>[0],
  name: string, stop: boolean): Promise<void> {
  try {
    if (stop) await request('node-stop', { name, force: true });
    await request('node-del', { name });
    ctx.warn(`rolled back: removed ${name} again (the one-shot form is all or nothing)`);
  } catch (err) {
    ctx.warn(`could not remove the half-configured node ${name} (${(err as Error).message}); remove it with: dst node stop ${name} --force; dst node del ${name}`);
  }
}
