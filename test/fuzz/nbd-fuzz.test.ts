// Fuzz of a remote node's NBD endpoint (a separate engine process, its unix socket): option
// haggling (random client flags, unknown and malformed options, mutated INFO/GO, unknown exports,
// oversized option data, bad magic) and the transmission phase (random, mutated and truncated
// requests, bad magic, oversized writes, disconnects). Meanwhile a legitimate NBD client on the same
// endpoint keeps its deterministic blocks; they are checked during and after, the remote engine's
// RSS is sampled, every rejection class reached (option replies, request errors, the engine's log)
// is counted (a class never reached fails the test), and the engine's log must hold only its own
// lines (export names with newlines, NUL or ESC come out escaped).
//
// The fuzz connections own the disk above FUZZ_FLOOR: a data-changing request aimed below it is
// moved up before it is sent (guardRequests), so any change to the legitimate blocks is a bug.
//   replay one case:  DST_FUZZ_SEED=<seed> DST_FUZZ_CASES=1 node --test dist/test/fuzz/nbd-fuzz.test.js
//   soak:             DST_FUZZ_CASES=20000 node --test dist/test/fuzz/nbd-fuzz.test.js
import { test } from 'node:test';
import { startPair } from '../helpers/cluster.js';
import { NbdClient } from '../helpers/nbd-client.js';
import {
  ClassCounter, LEGIT_BLOCKS, PEER_TEXT, RawPeer, assertCleanLog, fuzzConfig, fuzzEngine, mutate, verifyLegit, type Rng,
} from '../helpers/fuzz.js';
import {
  ClientFlag, Cmd, GREETING_SIZE, Info, MAX_OPTION_DATA, MAX_PAYLOAD, NBD_EXTENDED_REQUEST_MAGIC, NBD_OPTION_REPLY_MAGIC,
  NBD_REQUEST_MAGIC, NBD_SIMPLE_REPLY_MAGIC, OPTION_REPLY_HEADER_SIZE, Opt, Rep, REQUEST_HEADER_SIZE, SIMPLE_REPLY_SIZE,
  encodeClientFlags, encodeInfoRequest, encodeOption, encodeRequest, nbdErrName, repName,
} from '../../src/protocol/nbd.js';

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;
const FUZZ_FLOOR = 8 * MiB;
/** bound of every wait of a case (answers normally come in milliseconds; CI machines are loaded) */
const CASE_MS = 10_000;
const FLAGS = ClientFlag.C_FIXED_NEWSTYLE | ClientFlag.C_NO_ZEROES;

/** Remote engine log lines → class; the first matching pattern wins. */
const LOG_CLASSES = [
  ['log:bad-option-magic', /bad NBD option magic/],
  ['log:option-too-large', /NBD option \S+ carries \d+ bytes \(limit/],
  ['log:extended-request', /extended request header/],
  ['log:bad-request-magic', /bad NBD request magic/],
  ['log:write-too-large', /NBD write of \d+ bytes exceeds/],
  ['log:unknown-client-flags', /unknown client flags/],
  ['log:unknown-export', /asked for an unknown export/],
  ['log:request-refused', /NBD request refused/],
  ['log:disconnect', /NBD disconnect requested/],
] as const;

const EXPECTED = [
  'log:bad-option-magic', 'log:option-too-large', 'log:bad-request-magic', 'log:write-too-large', 'log:unknown-client-flags',
  'log:unknown-export', 'log:request-refused', 'log:disconnect',
  'reply:opt:NBD_REP_ERR_UNSUP', 'reply:opt:NBD_REP_ERR_INVALID', 'reply:opt:NBD_REP_ERR_UNKNOWN', 'reply:opt:NBD_REP_ACK',
  'reply:req:OK', 'reply:req:EINVAL', 'reply:req:ENOSPC',
];

/**
 * Move every data-changing request of a transmission-phase byte stream that aims below FUZZ_FLOOR
 * above it, reading the stream as the endpoint's decoder does (it stops where the endpoint would).
 */
function guardRequests(bytes: Buffer): Buffer {
  const b = Buffer.from(bytes);
  for (let at = 0; at + REQUEST_HEADER_SIZE <= b.length;) {
    if (b.readUInt32BE(at) !== NBD_REQUEST_MAGIC) break;
    const type = b.readUInt16BE(at + 6);
    const length = b.readUInt32BE(at + 24);
    if (type !== Cmd.READ && b.readBigUInt64BE(at + 16) < BigInt(FUZZ_FLOOR)) {
      b.writeBigUInt64BE(BigInt(FUZZ_FLOOR + (Number(b.readBigUInt64BE(at + 16) % BigInt(SIZE - FUZZ_FLOOR)))), at + 16);
    }
    if (type === Cmd.WRITE && length > MAX_PAYLOAD) break;
    at += REQUEST_HEADER_SIZE + (type === Cmd.WRITE ? length : 0);
  }
  return b;
}

/** One option: a known one with good, edited or wrong data, an unknown one, or a broken header. */
function fuzzOption(rng: Rng): Buffer {
  switch (rng.int(9)) {
    case 0: return encodeOption(12 + rng.int(1000), rng.bytes(rng.int(32)));
    case 1: return encodeOption(Opt.LIST, rng.chance(0.5) ? Buffer.alloc(0) : rng.bytes(1 + rng.int(8)));
    case 2: return encodeOption(Opt.STRUCTURED_REPLY, rng.chance(0.7) ? Buffer.alloc(0) : rng.bytes(4));
    case 3: return encodeOption(rng.pick([Opt.INFO, Opt.GO]), mutate(rng, encodeInfoRequest('', [Info.NAME, Info.BLOCK_SIZE])));
    case 4: return encodeOption(Opt.INFO, encodeInfoRequest(rng.pick(['nope', 'vol2', 'x'.repeat(100), ...PEER_TEXT]), []));
    case 5: return encodeOption(rng.pick([Opt.PEEK_EXPORT, Opt.STARTTLS, Opt.LIST_META_CONTEXT, Opt.SET_META_CONTEXT, Opt.EXTENDED_HEADERS]), rng.bytes(rng.int(16)));
    case 6: { // announces more data than any option may carry
      const o = encodeOption(rng.int(12));
      o.writeUInt32BE(MAX_OPTION_DATA + 1 + rng.int(1 << 24), 12);
      return o;
    }
    case 7: return encodeOption(Opt.EXPORT_NAME, Buffer.from(rng.pick(['nope', 'other', ...PEER_TEXT])));
    default: return mutate(rng, encodeOption(rng.int(12), rng.bytes(rng.int(24))));
  }
}

/** One transmission request: mostly well-formed with edge fields, sometimes edited or broken. */
function fuzzRequest(rng: Rng, cookie: number): Buffer {
  const type = rng.chance(0.85) ? rng.pick([Cmd.READ, Cmd.WRITE, Cmd.FLUSH, Cmd.TRIM, Cmd.WRITE_ZEROES, Cmd.CACHE, Cmd.BLOCK_STATUS]) : rng.int(0x10000);
  const flags = rng.chance(0.7) ? rng.pick([0, 1, 2]) : rng.int(0x10000);
  const length = rng.pick([0, 512, 4096, 1 + rng.int(65536), 2 * MiB, MAX_PAYLOAD + 1, rng.interesting()]) >>> 0;
  const offset = rng.pick([FUZZ_FLOOR, FUZZ_FLOOR + 512 * rng.int(8192), SIZE - 512, SIZE, 0, rng.int(SIZE), 2 ** 52]);
  const writeLen = type === Cmd.WRITE && length <= 65536 ? length : 0;
  const r = encodeRequest({ type, flags, cookie: BigInt(cookie), offset, length: type === Cmd.WRITE && length > 65536 && length <= MAX_PAYLOAD ? 512 : length, payload: writeLen ? rng.bytes(writeLen) : null });
  switch (rng.int(12)) {
    case 0: return mutate(rng, r);
    case 1: { const x = Buffer.from(r); x.writeUInt32BE(rng.chance(0.5) ? NBD_EXTENDED_REQUEST_MAGIC : rng.u32(), 0); return x; }
    default: return r;
  }
}

/** Count option replies (20-byte header + data) as they come; returns how many were ACKs. */
function countOptionReplies(peer: RawPeer, counter: ClassCounter): number {
  let acks = 0;
  while (peer.received.length >= OPTION_REPLY_HEADER_SIZE) {
    const h = peer.received;
    if (h.readBigUInt64BE(0) !== NBD_OPTION_REPLY_MAGIC) break;
    const len = h.readUInt32BE(16);
    if (h.length < OPTION_REPLY_HEADER_SIZE + len) break;
    const type = h.readUInt32BE(12);
    counter.add(`reply:opt:${repName(type)}`);
    if (type === Rep.ACK) acks++;
    peer.consume(OPTION_REPLY_HEADER_SIZE + len);
  }
  return acks;
}

/** Count simple replies; READ replies carry `length` bytes (known per cookie). */
function countRequestReplies(peer: RawPeer, counter: ClassCounter, reads: Map<bigint, number>): void {
  while (peer.received.length >= SIMPLE_REPLY_SIZE) {
    const h = peer.received;
    if (h.readUInt32BE(0) !== NBD_SIMPLE_REPLY_MAGIC) return;
    const error = h.readUInt32BE(4);
    const data = error === 0 ? (reads.get(h.readBigUInt64BE(8)) ?? 0) : 0;
    if (h.length < SIMPLE_REPLY_SIZE + data) return;
    counter.add(`reply:req:${error === 0 ? 'OK' : nbdErrName(error)}`);
    peer.consume(SIMPLE_REPLY_SIZE + data);
  }
}

/** Read lengths by cookie, for the requests of a stream that are READs (as the endpoint parses them). */
function readLengths(stream: Buffer): Map<bigint, number> {
  const out = new Map<bigint, number>();
  for (let at = 0; at + REQUEST_HEADER_SIZE <= stream.length;) {
    if (stream.readUInt32BE(at) !== NBD_REQUEST_MAGIC) break;
    const type = stream.readUInt16BE(at + 6);
    const length = stream.readUInt32BE(at + 24);
    if (type === Cmd.READ) out.set(stream.readBigUInt64BE(at + 8), length);
    at += REQUEST_HEADER_SIZE + (type === Cmd.WRITE ? length : 0);
  }
  return out;
}

async function nbdCase(socket: string, counter: ClassCounter, rng: Rng): Promise<void> {
  const peer = await RawPeer.open(socket);
  if (!await peer.until((b) => b.length >= GREETING_SIZE, CASE_MS)) throw new Error('no NBD greeting');
  peer.consume(GREETING_SIZE);
  const kind = rng.int(8);
  if (kind === 0) {
    // client flags and whatever follows, random
    peer.write(rng.chance(0.5) ? rng.bytes(rng.int(64)) : Buffer.concat([encodeClientFlags(rng.interesting()), rng.bytes(rng.int(40))]));
    await peer.finish(CASE_MS);
  } else if (kind <= 3) {
    // option haggling
    const opts: Buffer[] = [];
    for (let i = 0, n = 1 + rng.int(5); i < n; i++) opts.push(fuzzOption(rng));
    if (rng.chance(0.2)) opts.push(encodeOption(Opt.ABORT));
    peer.write(Buffer.concat([encodeClientFlags(FLAGS), ...opts]));
    await peer.finish(CASE_MS);
    countOptionReplies(peer, counter);
  } else {
    // GO, then requests (cut anywhere in one case of four)
    const reqs: Buffer[] = [];
    for (let i = 0, n = 1 + rng.int(8); i < n; i++) reqs.push(fuzzRequest(rng, i + 1));
    // a well-behaved end (DISC: the endpoint answers what it started, then closes) in most cases
    const disc = rng.chance(0.8);
    if (disc) reqs.push(encodeRequest({ type: Cmd.DISC, cookie: 99n, offset: 0, length: 0 }));
    let stream = guardRequests(Buffer.concat(reqs));
    const reads = readLengths(stream);
    if (kind === 4) stream = stream.subarray(0, rng.int(stream.length));
    // structured replies in some cases (their replies are then counted from the log only)
    const structured = rng.chance(0.3);
    const opts = [...(structured ? [encodeOption(Opt.STRUCTURED_REPLY)] : []), encodeOption(Opt.GO, encodeInfoRequest('', []))];
    peer.write(Buffer.concat([encodeClientFlags(FLAGS), ...opts]));
    // the option replies (…, ACK) first, so that request replies are parsed from their start
    let acks = 0;
    if (!await peer.until(() => (acks += countOptionReplies(peer, counter)) >= opts.length, CASE_MS)) throw new Error('no ACK to a valid NBD_OPT_GO');
    peer.write(stream);
    // after DISC the endpoint closes once it answered everything (our FIN would cut the replies
    // short: it does not allow half-open sockets); bounded for a DISC swallowed by a WRITE's payload
    if (disc && kind !== 4) await peer.until(() => false, 500);
    await peer.finish(CASE_MS);
    if (!structured) countRequestReplies(peer, counter, reads);
  }
}

test('NBD fuzz: the endpoint rejects what it must, keeps serving, loses nothing, stays bounded', async (t) => {
  const config = fuzzConfig(240, 0x5eed0201);
  const pair = await startPair(t, { size: SIZE });
  const legit = await NbdClient.connect(pair.socket);
  t.after(() => legit.close());
  const counter = new ClassCounter();
  const figures = await fuzzEngine({
    what: 'NBD fuzz', config, concurrency: 4, engine: pair.rem, legit,
    run: (rng) => nbdCase(pair.socket, counter, rng),
  });
  const fresh = await NbdClient.connect(pair.socket);
  t.after(() => fresh.close());
  await verifyLegit(fresh, 0, LEGIT_BLOCKS, 2, 'a new NBD connection after the fuzz');
  assertCleanLog(pair.rem.log(), 'NBD fuzz, remote engine log');
  counter.addLines(pair.rem.log(), () => true, LOG_CLASSES);
  t.diagnostic(`${config.cases} cases from seed ${config.seed}; ${figures}; ${counter.summary()}`);
  if (config.cases >= 100) counter.assertReached(EXPECTED, `NBD fuzz (seed ${config.seed})`);
});
