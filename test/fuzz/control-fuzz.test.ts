// Fuzz of the control socket (generic-netlink frames) of a real engine process running a remote
// node: random bytes, and valid requests of every read-only command (and of the state-changing ones
// aimed at a node that does not exist) edited at random, alone or pipelined. Meanwhile the engine
// keeps answering `dst status` and its remote node keeps serving a legitimate NBD client whose
// blocks are checked during and after; its RSS is sampled, and every rejection class reached (the
// NLMSG_ERROR replies) is counted; a class never reached fails the test.
//
// A fuzzed request must not reconfigure the engine under the legitimate client: a message whose
// command writes files or changes a node is turned into an unknown command unless it only names the
// decoy node (guardControl), which makes any change to the legitimate node a bug.
//   replay one case:  DST_FUZZ_SEED=<seed> DST_FUZZ_CASES=1 node --test dist/test/fuzz/control-fuzz.test.js
//   soak:             DST_FUZZ_CASES=20000 node --test dist/test/fuzz/control-fuzz.test.js
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPair } from '../helpers/cluster.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { ClassCounter, RawPeer, fuzzConfig, fuzzEngine, mutate, type Rng } from '../helpers/fuzz.js';
import {
  GENL_VERSION, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_MIN_LEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
  formatGenlMessage, parseError,
} from '../../src/netlink/codec.js';
import { DST_CMD, DST_FAMILY_ID, FAMILY } from '../../src/netlink/family.js';
import { encodeObject } from '../../src/netlink/schema.js';

const MiB = 1024 * 1024;
const CASE_MS = 250;
const DECOY = 'fz';
const REAL = Buffer.from('vol');
const MAX_CONTROL_MESSAGE = 1024 * 1024;

/** Commands that only read: any node name may appear in them. */
const READ_ONLY = new Set<number>([DST_CMD.HELLO, DST_CMD.NODE_LIST, DST_CMD.NODE_SHOW, DST_CMD.SECURITY_LIST, DST_CMD.CRYPTO_SHOW,
  DST_CMD.STATUS, DST_CMD.CONFIG_SHOW, DST_CMD.SUBSCRIBE]);
/** Commands that change a node: allowed while they name only the decoy (they then fail: no such node). */
const DECOY_ONLY = new Set<number>([DST_CMD.NODE_START, DST_CMD.NODE_STOP, DST_CMD.NODE_DEL, DST_CMD.NODE_RECONNECT, DST_CMD.NODE_SET,
  DST_CMD.SECURITY_ADD, DST_CMD.SECURITY_DEL, DST_CMD.CRYPTO_SET, DST_CMD.CRYPTO_CLEAR]);
const KNOWN = new Set<number>(Object.values(DST_CMD));
const UNKNOWN_CMD = 200;

/** NLMSG_ERROR message → class; the first matching pattern wins, else the error's code. */
const ERROR_CLASSES = [
  ['too-short', /too short/],
  ['too-large', /too large/],
  ['bad-type', /unknown message type/],
  ['no-request-flag', /without NLM_F_REQUEST/],
  ['genl-version', /generic netlink version/],
  ['unknown-cmd', /unknown dst command/],
  ['bad-attribute', /attribute/],
  ['partial-timeout', /partial control message/],
] as const;

const EXPECTED = [
  'reply:too-short', 'reply:too-large', 'reply:bad-type', 'reply:no-request-flag', 'reply:genl-version', 'reply:unknown-cmd',
  'reply:bad-attribute', 'reply:refused:DST_ERR_NOT_FOUND', 'reply:ok', 'reply:ack',
];

/** Valid requests to start from (their flags as the CLI sends them). */
const BASES: readonly { cmd: number; flags: number; attrs: Buffer }[] = [
  { cmd: DST_CMD.HELLO, flags: NLM_F_REQUEST, attrs: encodeObject(FAMILY.hello.args, { version: '0.1.0' }) },
  { cmd: DST_CMD.STATUS, flags: NLM_F_REQUEST, attrs: encodeObject(FAMILY.status.args, {}) },
  { cmd: DST_CMD.NODE_LIST, flags: NLM_F_REQUEST | NLM_F_DUMP, attrs: encodeObject(FAMILY['node-list'].args, {}) },
  { cmd: DST_CMD.NODE_SHOW, flags: NLM_F_REQUEST | NLM_F_ACK, attrs: encodeObject(FAMILY['node-show'].args, { name: 'vol' }) },
  { cmd: DST_CMD.CRYPTO_SHOW, flags: NLM_F_REQUEST, attrs: encodeObject(FAMILY['crypto-show'].args, { name: 'vol' }) },
  { cmd: DST_CMD.CONFIG_SHOW, flags: NLM_F_REQUEST, attrs: encodeObject(FAMILY['config-show'].args, {}) },
  { cmd: DST_CMD.SUBSCRIBE, flags: NLM_F_REQUEST, attrs: encodeObject(FAMILY.subscribe.args, { node: DECOY }) },
  { cmd: DST_CMD.NODE_SET, flags: NLM_F_REQUEST, attrs: encodeObject(FAMILY['node-set'].args, { name: DECOY, maxInflight: 7, maxRequest: 65536 }) },
  { cmd: DST_CMD.NODE_STOP, flags: NLM_F_REQUEST, attrs: encodeObject(FAMILY['node-stop'].args, { name: DECOY, force: true }) },
  { cmd: DST_CMD.SECURITY_ADD, flags: NLM_F_REQUEST, attrs: encodeObject(FAMILY['security-add'].args, { name: DECOY, addr: '10.0.0.0/8', perm: 'rw', keyFile: null }) },
  { cmd: DST_CMD.CRYPTO_SET, flags: NLM_F_REQUEST, attrs: encodeObject(FAMILY['crypto-set'].args, { name: DECOY, cipher: 'aes-gcm', threads: 2 }) },
];

/**
 * Walk a byte stream as the engine's framer does; a message whose command may change the engine
 * (beyond the decoy) becomes an unknown command. Lengths are never touched, so framing is kept.
 */
function guardControl(bytes: Buffer): Buffer {
  const b = Buffer.from(bytes);
  for (let at = 0; at + 4 <= b.length;) {
    const len = b.readUInt32LE(at);
    if (len < NLMSG_MIN_LEN || len > MAX_CONTROL_MESSAGE) break;
    if (at + NLMSG_HDRLEN < b.length) {
      const cmd = b[at + NLMSG_HDRLEN]!;
      const body = b.subarray(at, Math.min(b.length, at + len));
      const allowed = READ_ONLY.has(cmd) || !KNOWN.has(cmd) || (DECOY_ONLY.has(cmd) && body.indexOf(REAL) < 0);
      if (!allowed) b[at + NLMSG_HDRLEN] = UNKNOWN_CMD;
    }
    at += Math.max(len, 4);
  }
  return b;
}

function request(rng: Rng, seq: number): Buffer {
  const base = rng.pick(BASES);
  return formatGenlMessage({ type: DST_FAMILY_ID, flags: base.flags, seq, cmd: base.cmd, attrs: base.attrs });
}

/** One case's bytes: random, a request with one header field at an edge value, edited requests, or a pipeline. */
function controlBytes(rng: Rng): Buffer {
  switch (rng.int(6)) {
    case 0: return rng.chance(0.5) ? rng.bytes(rng.int(80))
      : formatGenlMessage({ type: DST_FAMILY_ID, flags: NLM_F_REQUEST, seq: 1, cmd: 25 + rng.int(231), attrs: rng.bytes(4 * rng.int(4)) });
    case 1: { // one header field at an edge value: length, type, flags, genl cmd or version
      const m = request(rng, 1);
      const [at, size] = rng.pick([[0, 4], [4, 2], [6, 2], [16, 1], [17, 1]] as const);
      const v = rng.chance(0.3) ? rng.pick([0, 12, 19, 20, MAX_CONTROL_MESSAGE + 1, GENL_VERSION + 1, NLMSG_ERROR, DST_FAMILY_ID + 1]) : rng.interesting();
      if (size === 4) m.writeUInt32LE(v >>> 0, at);
      else if (size === 2) m.writeUInt16LE(v & 0xffff, at);
      else m[at] = v & 0xff;
      return m;
    }
    case 2: { // an edited attribute area, the message length kept right
      const base = rng.pick(BASES);
      return formatGenlMessage({ type: DST_FAMILY_ID, flags: base.flags, seq: 1, cmd: base.cmd, attrs: mutate(rng, base.attrs) });
    }
    case 3: return mutate(rng, request(rng, 1));
    default: { // a pipeline: valid requests with one edited among them
      const msgs: Buffer[] = [];
      for (let i = 0, n = 2 + rng.int(4); i < n; i++) msgs.push(request(rng, i + 1));
      const k = rng.int(msgs.length);
      if (rng.chance(0.7)) msgs[k] = mutate(rng, msgs[k]!);
      return Buffer.concat(msgs);
    }
  }
}

/** Count the replies: NLMSG_ERROR by class (or ack), answers and dump ends. */
function countReplies(b: Buffer, counter: ClassCounter): void {
  for (let at = 0; at + NLMSG_HDRLEN <= b.length;) {
    const len = b.readUInt32LE(at);
    if (len < NLMSG_HDRLEN || at + len > b.length) return;
    const type = b.readUInt16LE(at + 4);
    if (type === NLMSG_ERROR) {
      const e = parseError(b.subarray(at + NLMSG_HDRLEN, at + len), b.readUInt16LE(at + 6)).x;
      if (e.error === 0) counter.add('reply:ack');
      else {
        const hit = ERROR_CLASSES.find(([, re]) => re.test(e.message ?? ''));
        counter.add(`reply:${hit ? hit[0] : `refused:${e.code ?? -e.error}`}`);
      }
    } else if (type === NLMSG_DONE) counter.add('reply:done');
    else if (type === DST_FAMILY_ID) counter.add('reply:ok');
    at += len;
  }
}

async function controlCase(socket: string, counter: ClassCounter, rng: Rng): Promise<void> {
  const peer = await RawPeer.open(socket);
  peer.write(guardControl(controlBytes(rng)));
  await peer.until(() => false, CASE_MS);
  countReplies(peer.received, counter);
  peer.socket.destroy();
  await peer.closed;
}

test('control socket fuzz: the engine rejects what it must, keeps serving, loses nothing, stays bounded', async (t) => {
  const config = fuzzConfig(240, 0x5eed0301);
  const pair = await startPair(t, { size: 16 * MiB });
  const legit = await NbdClient.connect(pair.socket);
  t.after(() => legit.close());
  const before = await pair.rem.show('vol');
  const counter = new ClassCounter();
  const figures = await fuzzEngine({
    what: 'control fuzz', config, concurrency: 8, engine: pair.rem, legit,
    run: (rng) => controlCase(pair.rem.socket, counter, rng),
    alsoCheck: async () => assert.equal((await pair.rem.status()).pid, pair.rem.pid, 'the engine answers dst status'),
  });
  const after = await pair.rem.show('vol');
  assert.equal(after.state, 'ready');
  assert.deepEqual(after.policy, before.policy, 'the legitimate node\'s policy is unchanged');
  assert.deepEqual((await pair.rem.dstJson<{ name: string }[]>(['node', 'list'])).map((n) => n.name), ['vol'], 'no node was added');
  t.diagnostic(`${config.cases} cases from seed ${config.seed}; ${figures}; ${counter.summary()}`);
  if (config.cases >= 100) counter.assertReached(EXPECTED, `control fuzz (seed ${config.seed})`);
});
