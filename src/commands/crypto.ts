// `dst crypto set|show|clear`: a node's suite and key file paths. The engine reads the key files;
// the CLI only makes their paths absolute. Changes apply at the next handshake.
import type { CryptoSetArgs, CryptoShow } from '../engine/types.js';
import { defineCommand, defineGroup, makeContext, usage, type CommandContext, type DstCommand } from './context.js';
import { isUnkeyedDigest } from '../protocol/suite-names.js';
import { UNKEYED_DIGEST_WARNING, optCipher, optHash, optInt, optName } from './args.js';
import { cryptoBlock } from './render.js';
import { describeOf } from './help.js';

const name = { describe: 'node name', type: 'string' } as const;

interface SetOpts { name: string; cipher?: string; cipherKeyFile?: string; hash?: string; hashKeyFile?: string; threads?: string }

export function cryptoSetArgs(o: SetOpts, abs: (p: string) => string): CryptoSetArgs {
  const out: CryptoSetArgs = { name: optName(o.name) };
  if (o.cipher !== undefined) out.cipher = optCipher('--cipher', o.cipher);
  if (o.cipherKeyFile !== undefined) out.cipherKeyFile = abs(o.cipherKeyFile);
  if (o.hash !== undefined) {
    // hmac(sha256) names the keyed form; whether a key file is set (now or before) is the engine's to check
    out.hash = optHash('--hash', o.hash).hash;
  }
  if (o.hashKeyFile !== undefined) out.hashKeyFile = abs(o.hashKeyFile);
  if (o.threads !== undefined) out.threads = optInt('--threads', o.threads, 1);
  if (Object.keys(out).length === 1) {
    throw usage('dst crypto set: give at least one of --cipher, --cipher-key-file, --hash, --hash-key-file, --threads');
  }
  return out;
}

/** Say so when the node's suite is an unkeyed digest (accidents only, no authentication). */
export function warnSuite(ctx: CommandContext, nodeName: string, c: CryptoShow): void {
  if (isUnkeyedDigest(c.suite)) ctx.warn(`${nodeName}: suite ${c.suite}: ${UNKEYED_DIGEST_WARNING}`);
}

const set = defineCommand<SetOpts>({
  command: 'set <name>',
  describe: describeOf('crypto-set', 'set the cipher, hash, key files or crypto threads; applies at the next handshake (dst node reconnect)'),
  builder: (y) => y.positional('name', name).options({
    cipher: { type: 'string', describe: 'aes-gcm, chacha20-poly1305, aes-cbc, aes-ctr or none' },
    'cipher-key-file': { type: 'string', describe: 'file with the cipher key (hex, base64:..., or >= 32 raw bytes)' },
    hash: { type: 'string', describe: 'sha256, sha512 or blake2b512 (an HMAC with --hash-key-file)' },
    'hash-key-file': { type: 'string', describe: 'file with the hash key' },
    threads: { type: 'string', describe: 'crypto worker threads (default: cores)' },
  }).example('$0 crypto set vol --cipher aes-gcm --cipher-key-file /etc/dst/keys/vol', ''),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const args = cryptoSetArgs(argv, ctx.abs);
    const res = await ctx.request('crypto-set', args);
    warnSuite(ctx, args.name, res);
    ctx.print(res, cryptoBlock);
  },
});

const show = defineCommand<{ name: string }>({
  command: 'show <name>',
  describe: describeOf('crypto-show', 'show a node\'s suite and key file paths (never key bytes)'),
  builder: (y) => y.positional('name', name),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const nodeName = optName(argv.name);
    const res = await ctx.request('crypto-show', { name: nodeName });
    warnSuite(ctx, nodeName, res);
    ctx.print(res, cryptoBlock);
  },
});

const clear = defineCommand<{ name: string }>({
  command: 'clear <name>',
  describe: describeOf('crypto-clear', 'back to no cipher and no hash'),
  builder: (y) => y.positional('name', name),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const res = await ctx.request('crypto-clear', { name: optName(argv.name) });
    ctx.print(res, cryptoBlock);
  },
});

export const cryptoSubcommands: readonly DstCommand[] = [set, show, clear] as readonly DstCommand[];
export const cryptoCommand: DstCommand = defineGroup('crypto', 'Manage a node\'s encryption and integrity: set, show, clear', cryptoSubcommands);
