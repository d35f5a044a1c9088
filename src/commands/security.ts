// `dst security add|del|list|load`: the export's ACL. `load` reads the original utility's file
// format here in the CLI and sends every entry in one `security-load` request.
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { AclEntry, Perm } from '../engine/types.js';
import { errnoOf } from '../util/errors.js';
import { formatCidr, parseCidr } from '../util/parse.js';
import { DstError } from '../util/errors.js';
import { defineCommand, defineGroup, makeContext, usage, type DstCommand } from './context.js';
import { optCidr, optName, optPerm } from './args.js';
import { aclTable } from './render.js';
import { describeOf } from './help.js';

const PERM_BY_NUMBER: readonly Perm[] = ['none', 'r', 'w', 'rw'];

/** strtoul(text, NULL, 0) for the whole token: 0x.. hex, 0.. octal, else decimal. NaN if not a number. */
export function strtoul0(text: string): number {
  if (/^0x[0-9a-f]+$/i.test(text)) return parseInt(text.slice(2), 16);
  if (/^0[0-7]*$/.test(text)) return parseInt(text, 8);
  if (/^[1-9][0-9]*$/.test(text)) return parseInt(text, 10);
  return NaN;
}

/**
 * Parse a security file: one `<perm> <address>` per line (the original utility's format), perm
 * parsed like strtoul base 0 (0 deny, 1 read, 2 write, 3 both), address IP or IP/PREFIX; an
 * optional `key-file=PATH` (relative to the file's directory) binds the entry to a key.
 * Blank lines and `#` comments are skipped. Errors name file:line.
 */
export function parseSecurityFile(text: string, file: string): AclEntry[] {
  const entries: AclEntry[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const where = `${file}:${i + 1}`;
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const fields = line.split(/\s+/);
    if (fields.length < 2 || fields.length > 3) {
      throw usage(`${where}: expected "<perm> <address>" (perm 0-3, address IP or IP/PREFIX), got ${JSON.stringify(line)}`, { code: 'DST_ERR_INVALID' });
    }
    const n = strtoul0(fields[0]!);
    if (!(n >= 0 && n <= 3)) {
      throw usage(`${where}: invalid permission ${JSON.stringify(fields[0])}: expected 0 (deny), 1 (read), 2 (write) or 3 (read and write)`, { code: 'DST_ERR_INVALID' });
    }
    let addr: string;
    try {
      addr = formatCidr(parseCidr(fields[1]!));
    } catch (err) {
      throw usage(`${where}: ${err instanceof DstError ? err.message : String(err)}`, { code: 'DST_ERR_INVALID' });
    }
    let keyFile: string | null = null;
    if (fields[2] !== undefined) {
      const m = /^key-file=(.+)$/.exec(fields[2]);
      if (!m) throw usage(`${where}: unexpected ${JSON.stringify(fields[2])}: the only optional field is key-file=PATH`, { code: 'DST_ERR_INVALID' });
      keyFile = isAbsolute(m[1]!) ? m[1]! : resolve(dirname(file), m[1]!);
    }
    entries.push({ addr, perm: PERM_BY_NUMBER[n]!, keyFile });
  });
  return entries;
}

/** Read and parse a security file; a missing or unreadable file is an input error (exit 2). */
export async function loadSecurityFile(path: string): Promise<AclEntry[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const errno = errnoOf(err);
    throw usage(`cannot read security file ${path}: ${(err as Error).message}`,
      { code: errno === 'ENOENT' ? 'DST_ERR_NOT_FOUND' : 'DST_ERR_INVALID', errno, cause: err });
  }
  return parseSecurityFile(text, path);
}

const name = { describe: 'export node name', type: 'string' } as const;

interface AddOpts { name: string; addr: string; perm: string; keyFile?: string }

const add = defineCommand<AddOpts>({
  command: 'add <name>',
  describe: describeOf('security-add', 'allow (or deny) an address or network on an export; longest prefix wins'),
  builder: (y) => y.positional('name', name).options({
    addr: { type: 'string', demandOption: true, describe: 'IP or IP/PREFIX' },
    perm: { type: 'string', demandOption: true, describe: 'r, w, rw, or 0/none (deny)' },
    'key-file': { type: 'string', describe: 'clients from this address must prove this key' },
  }).example('$0 security add vol --addr 10.0.0.0/8 --perm rw', ''),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const args = {
      name: optName(argv.name),
      addr: optCidr('--addr', argv.addr),
      perm: optPerm('--perm', argv.perm),
      keyFile: argv.keyFile === undefined ? null : ctx.abs(argv.keyFile),
    };
    const res = await ctx.request('security-add', args);
    ctx.print(res, (acl) => aclTable(ctx.chalk, args.name, acl));
  },
});

const del = defineCommand<{ name: string; addr: string }>({
  command: 'del <name>',
  aliases: ['delete', 'rm'],
  describe: describeOf('security-del', 'remove the ACL entry for exactly this address or network'),
  builder: (y) => y.positional('name', name).options({
    addr: { type: 'string', demandOption: true, describe: 'IP or IP/PREFIX, as added' },
  }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const nodeName = optName(argv.name);
    const res = await ctx.request('security-del', { name: nodeName, addr: optCidr('--addr', argv.addr) });
    ctx.print(res, (acl) => aclTable(ctx.chalk, nodeName, acl));
  },
});

const list = defineCommand<{ name: string }>({
  command: 'list <name>',
  aliases: ['ls'],
  describe: describeOf('security-list', 'list an export\'s ACL'),
  builder: (y) => y.positional('name', name),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const nodeName = optName(argv.name);
    const res = await ctx.request('security-list', { name: nodeName });
    ctx.print(res, (acl) => aclTable(ctx.chalk, nodeName, acl));
  },
});

const load = defineCommand<{ name: string; file: string }>({
  command: 'load <name> <file>',
  describe: describeOf('security-load', 'add every entry of a security file ("<perm> <address>" per line, perm 0-3) at once'),
  builder: (y) => y.positional('name', name).positional('file', { type: 'string', describe: 'security file' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const nodeName = optName(argv.name);
    const entries = await loadSecurityFile(ctx.abs(argv.file));
    const res = await ctx.request('security-load', { name: nodeName, entries });
    ctx.print(res, (acl) => aclTable(ctx.chalk, nodeName, acl));
  },
});

export const securitySubcommands: readonly DstCommand[] = [add, del, list, load] as readonly DstCommand[];
export const securityCommand: DstCommand = defineGroup('security', 'Manage an export\'s ACL: add, del, list, load', securitySubcommands);
