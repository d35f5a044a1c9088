// The export side of the HELLO/AUTH handshake (DESIGN §7, §9): decides on a client's HELLO, builds
// the HELLO_REPLY and the session keys, checks the client's AUTH proof, and refuses at accept. It
// owns no socket, timer or phase: the connection (connection.ts) sends what this decides.
//
// Frames in order:
//   client HELLO            version, export name, session id, access, suite, key id, nonce
//   → checks: serving, version, export name, ACL (deny), suite == ours exactly (EPROTO names both),
//     key-bound ACL entry: the HELLO's key id must be that key's (EACCES), key files readable,
//     a mirror claim older than the highest seen for its mirror (EPERM, "taken-over")
//   suites without a key (none, none+<h>): the claim stored, fencing, then HELLO_REPLY; serving.
//   suites with a key: HELLO_REPLY (granted, suite, server nonce), then
//   client AUTH             HMAC(confirm, "client" ‖ HELLO payload ‖ HELLO_REPLY payload)
//   → wrong proof: AUTH with status EACCES + message, close; 'authentication failed' logged,
//     event auth-failed {addr}. Right proof: the claim stored, fencing (only now may it take a
//     session or a mirror over), then
//   server AUTH             HMAC(confirm, "server" ‖ transcript); serving.
// The whole handshake, AUTH included, is bounded by the HELLO timeout (the connection's timer).
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import { errnoNumber, errnoOf } from '../../util/errors.js';
import { peerText } from '../../util/escape.js';
import {
  Cmd, Feature, WIRE_VERSION, cmdName, decodeAuth, decodeHeader, encodeAuth, encodeFrame, encodeHelloReply, encodeRefusal, type Frame, type Hello,
} from '../../protocol/wire.js';
import {
  authProof, deriveSessionKeys, keyId, proofsEqual, suiteByName, type SessionKeys, type Suite,
} from '../../protocol/suites.js';
import { suiteNameOf } from '../../protocol/suite-names.js';
import { configSuite, loadNodeKey, readKeyFile } from '../keys.js';
import type { AclEntry, CryptoConfig, EventFields, EventName, ExportConfig, Limits } from '../types.js';
import { accessName, entryAccess, grantAccess } from './acl.js';
import { holdClaim, type HeldClaim, type MirrorClaims } from './mirror-claims.js';

/** Preferred/minimum block size announced in HELLO_REPLY (the backend is byte-granular). */
export const BLOCK_SIZE = 512;
/** A HELLO is small: refuse a first frame announcing more than this before anything is allocated. */
export const MAX_HELLO_PAYLOAD = 64 * 1024;
/** How long a refused or drained connection may linger after our FIN before it is destroyed. */
export const LINGER_MS = 2000;

/** A keyed handshake between HELLO_REPLY and the client's AUTH. */
export interface PendingAuth {
  suite: Suite;
  keys: SessionKeys;
  transcript: Buffer;
  granted: number;
  sessionId: Buffer;
  claim: HeldClaim | null;
}

/** What deciding on a HELLO reads from the export node (its current config, state, disk). */
export interface HelloNode {
  readonly name: string;
  readonly limits: Limits;
  config(): ExportConfig;
  /** true while the node is listening (new HELLOs accepted) */
  serving(): boolean;
  /** the ACL entry governing `peer` in the CURRENT config */
  aclEntry(peer: string): AclEntry | null;
  identity(): Buffer;
  /** the mirror claims seen by this export (loaded at start) */
  claims(): MirrorClaims;
  /** new each time the node starts serving (HELLO_REPLY's instance) */
  instance(): Buffer;
  size(): number;
  /** the backend honours FAST_ZERO (HELLO_REPLY's Feature.FAST_ZERO) */
  fastZero(): boolean;
  emit(event: EventName, fields: EventFields): void;
}

/** ... and from the connection the HELLO came on. */
export interface HelloPeer {
  /** peer address, IPv4-mapped normalised */
  readonly peer: string;
  /** "ip:port" of the peer, for logs */
  readonly label: string;
  readonly log: Logger;
  /** still waiting on this handshake (false once the connection closed while a key file was read) */
  pending(): boolean;
}

/** What to do with a HELLO. */
export type HelloVerdict =
  /** refuse with errno; `auth`: an authentication failure (logged, event auth-failed) */
  | { kind: 'refuse'; errno: string; message: string; auth: boolean }
  /** the connection closed meanwhile: nothing to answer */
  | { kind: 'gone' }
  /** no key to prove: admit the session, then answer with reply(nonce) */
  | { kind: 'admit'; suite: Suite; granted: number; sessionId: Buffer; claim: HeldClaim | null; reply: (nonce: Buffer) => Buffer }
  /** send `reply` (HELLO_REPLY), then wait for the client's AUTH */
  | { kind: 'auth'; pending: PendingAuth; reply: Buffer };

const refusal = (errno: string, message: string, auth = false): HelloVerdict => ({ kind: 'refuse', errno, message, auth });

/**
 * Decide on a HELLO; `helloBytes` are its payload as received (the first half of the transcript
 * both AUTH proofs cover). Logs and emits the events of a refusal; the caller sends it.
 */
export async function decideHello(host: HelloNode, from: HelloPeer, hello: Hello, helloBytes: Buffer): Promise<HelloVerdict> {
  const cfg = host.config();
  const node = host.name;
  const peer = from.peer;
  const log = from.log;
  if (!host.serving()) return refusal('ESHUTDOWN', `node ${node} is not serving`);
  if (hello.version !== WIRE_VERSION) {
    return refusal('EPROTO', `protocol version ${hello.version} is not supported by node ${node} (it speaks ${WIRE_VERSION})`);
  }
  if (hello.exportName !== '' && hello.exportName !== node) {
    return refusal('ENOENT', `no export "${peerText(hello.exportName)}" here: node ${node} serves "" and "${node}"`);
  }
  const entry = host.aclEntry(peer);
  if (!entry || entry.perm === 'none') {
    host.emit('acl-denied', { addr: peer });
    return refusal('EACCES', `address ${peer} is not allowed by node ${node}`);
  }
  const ours = suiteName(cfg.crypto);
  if (hello.suite !== ours) {
    const message = suiteMismatchMessage(hello.suite, node, ours);
    log.error(`${message} (client ${from.label})`, { op: 'hello', addr: peer });
    host.emit('auth-failed', { addr: peer, message });
    return refusal('EPROTO', message);
  }
  let suite: Suite;
  try {
    suite = configSuite(cfg.crypto);
  } catch (err) {
    log.error(`cannot serve suite ${ours}: ${(err as Error).message}`, { op: 'hello' });
    return refusal('EPROTO', `export ${node} has an inconsistent crypto configuration (see its log)`);
  }
  const granted = grantAccess(hello.access, entry, cfg.readonly);
  if (granted === 0) {
    return refusal('EACCES', `address ${peer} may not ${accessName(hello.access)} on node ${node}`
      + ` (allowed: ${accessName(entryAccess(entry, cfg.readonly))})`);
  }
  const claim = hello.mirrorClaim ? holdClaim(hello.mirrorClaim) : null;
  const taken = claim ? host.claims().refusal(claim) : null;
  if (taken !== null) return refusal('EPERM', taken);

  // The input key: the key-bound ACL entry's key, else the node's cipher key ‖ hash key.
  let inputKey: Buffer | null = null;
  if (entry.keyFile !== null) {
    if (!suite.needsKey) {
      return refusal('EACCES', `authentication failed: the ACL entry for ${peer} on export ${node} is bound to a key,`
        + ` but suite ${suite.name} proves no key; configure a keyed suite on both sides`, true);
    }
    let key: Buffer;
    try {
      key = await readKeyFile(entry.keyFile, log);
    } catch (err) {
      log.error(`cannot load the key bound to ${entry.addr}: ${(err as Error).message}`, { op: 'key', errno: errnoOf(err) });
      if (!from.pending()) return { kind: 'gone' };
      return refusal('EACCES', `authentication failed: export ${node} cannot load the key bound to ${peer} (see its log)`, true);
    }
    if (!from.pending()) {
      key.fill(0);
      return { kind: 'gone' };
    }
    if (!hello.keyId || !proofsEqual(hello.keyId, keyId(key))) {
      key.fill(0);
      return refusal('EACCES', `authentication failed: key-bound ACL entry for ${peer} needs another key`, true);
    }
    inputKey = key;
  } else if (suite.needsKey) {
    try {
      inputKey = await loadNodeKey(cfg.crypto, suite, log);
    } catch (err) {
      log.error(`cannot load the node's key: ${(err as Error).message}`, { op: 'key', errno: errnoOf(err) });
      if (!from.pending()) return { kind: 'gone' };
      return refusal('EACCES', `authentication failed: export ${node} cannot load its key (see its log)`, true);
    }
    if (!from.pending()) {
      inputKey?.fill(0);
      return { kind: 'gone' };
    }
  }

  const reply = (nonce: Buffer): Buffer => encodeHelloReply({
    identity: host.identity(),
    size: host.size(),
    blockSize: BLOCK_SIZE,
    maxRequest: host.limits.maxRequestCap,
    granted,
    suite: suite.name,
    nonce,
    message: null,
    instance: host.instance(),
    features: Feature.DIGEST | Feature.MIRROR_CLAIM | Feature.BLOCK_STATUS | Feature.ZERO_FLAGS | (host.fastZero() ? Feature.FAST_ZERO : 0),
  });
  // none / none+<h>: nothing to prove
  if (!suite.needsKey || inputKey === null) return { kind: 'admit', suite, granted, sessionId: hello.sessionId, claim, reply };
  const serverNonce = randomBytes(32);
  const replyBytes = reply(serverNonce);
  const keys = deriveSessionKeys(suite, inputKey, hello.nonce, serverNonce);
  inputKey.fill(0);
  return {
    kind: 'auth',
    pending: { suite, keys, transcript: Buffer.concat([helloBytes, replyBytes]), granted, sessionId: hello.sessionId, claim },
    reply: replyBytes,
  };
}

/**
 * Why a connection's first frame header is refused before its payload is buffered (an unknown peer
 * announcing a large payload, or not starting with HELLO), or null if it may be read.
 */
export function firstHeaderProblem(head: Buffer): string | null {
  try {
    const h = decodeHeader(head, MAX_HELLO_PAYLOAD);
    return h.cmd === Cmd.HELLO ? null : `expected HELLO, got ${cmdName(h.cmd)}`;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Does the client's AUTH frame carry the right key proof over the transcript? */
export function clientProofOk(pa: PendingAuth, frame: Frame): boolean {
  let proof: Buffer | null = null;
  if (frame.status === 0) {
    try {
      proof = decodeAuth(frame.payload).proof;
    } catch { /* a malformed AUTH proves nothing */ }
  }
  return proof !== null && proofsEqual(proof, authProof(pa.keys.confirm, 'client', pa.transcript));
}

/** The server's AUTH payload; the confirm key is wiped, it is not needed any more. */
export function serverAuth(pa: PendingAuth): Buffer {
  const payload = encodeAuth({ proof: authProof(pa.keys.confirm, 'server', pa.transcript) });
  pa.keys.confirm.fill(0);
  return payload;
}

export function wipeKeys(k: SessionKeys): void {
  for (const b of [k.clientToServer.enc, k.clientToServer.mac, k.serverToClient.enc, k.serverToClient.mac, k.confirm]) b.fill(0);
}

/** Canonical suite name of a crypto config, named even when inconsistent (for the refusal message). */
export function suiteName(c: Pick<CryptoConfig, 'cipher' | 'hash' | 'hashKeyFile'>): string {
  return suiteNameOf(c.cipher, c.hash, c.hashKeyFile !== null);
}

/**
 * The refusal message of a suite mismatch: names both suites (the client's escaped, it is peer
 * text), says when crypto is on one side only, and says when the client's is no suite at all.
 */
export function suiteMismatchMessage(client: string, node: string, ours: string): string {
  const m = `suite mismatch: client asked for "${peerText(client)}", export ${node} uses ${ours}`;
  if (!knownSuite(client)) return `${m} (that is not a suite name; suite names are lowercase, e.g. none, aes-gcm, aes-ctr+hmac-sha256)`;
  if (client === 'none') return `${m} (crypto is configured on the export only)`;
  if (ours === 'none') return `${m} (crypto is configured on the client only)`;
  return m;
}

function knownSuite(name: string): boolean {
  try {
    return suiteByName(name).name === name;
  } catch {
    return false;
  }
}

/**
 * Refuse a connection at accept (ACL, connection caps): a HELLO_REPLY refusal, then close. With a
 * clock the peer gets LINGER_MS to read it (input discarded); without, the socket is destroyed as
 * soon as the refusal is written (no timer: used when too many refused sockets already linger).
 */
export function refuseSocket(socket: Socket, errno: string, message: string, clock: Clock | null): void {
  socket.on('error', () => {});
  for (const p of encodeFrame({ cmd: Cmd.HELLO_REPLY, status: errnoNumber(errno), payload: encodeRefusal(message) })) socket.write(p);
  if (clock === null) {
    socket.destroySoon();
    return;
  }
  socket.on('data', () => {}); // discard
  socket.on('end', () => socket.destroy());
  socket.end();
  const t = clock.setTimer(LINGER_MS, () => socket.destroy());
  socket.on('close', () => t.cancel());
}
