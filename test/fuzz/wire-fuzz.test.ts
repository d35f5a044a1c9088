// Fuzz of the DST wire protocol against a real export engine (a separate process) on loopback, on
// the plain suite `none` and on the sealed suite `aes-gcm`: random bytes, HELLOs with mutated
// headers and fields, truncated streams, oversized frames, and full sessions (AUTH with the real key
// on the sealed suite) followed by random, mutated and tampered frames. Meanwhile a legitimate
// remote node serves its NBD socket; its blocks are checked during and after, the export engine's
// RSS is sampled, every rejection class the cases reached is counted (from the replies and the
// export's log; a class never reached fails the test), and the export's log must hold only its own
// lines (peer text with newlines, NUL or ESC comes out escaped).
//
// The fuzz peer (127.0.0.3, ACL rw) owns the disk above FUZZ_FLOOR: a data-changing request aimed
// below it is moved up before it is sent (guardStream), so any change to the legitimate blocks
// (below it) is a bug, not a permitted write.
//   replay one case:  DST_FUZZ_SEED=<seed> DST_FUZZ_CASES=1 node --test dist/test/fuzz/wire-fuzz.test.js
//   soak:             DST_FUZZ_CASES=20000 node --test dist/test/fuzz/wire-fuzz.test.js
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startPair } from '../helpers/cluster.js';
import { makeKeyFile } from '../helpers/keys.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { tmpDir } from '../helpers/tmp.js';
import { ClassCounter, PEER_TEXT, RawPeer, assertCleanLog, fuzzConfig, fuzzEngine, mutate, type Rng } from '../helpers/fuzz.js';
import {
  Access, Cmd, HEADER_SIZE, MAX_PAYLOAD, Op, WIRE_VERSION, decodeHeader, decodeHelloReply, encodeAuth, encodeFrame,
  encodeHeader, encodeHello, type FrameInit, type Hello,
} from '../../src/protocol/wire.js';
import { authProof, deriveSessionKeys, keyId, open, seal, sealedLength, suiteByName, type DirectionKeys, type Suite } from '../../src/protocol/suites.js';
import { errnoName } from '../../src/util/errors.js';

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;
const FUZZ_FLOOR = 8 * MiB;
const FUZZ_ADDR = '127.0.0.3';
/** bound of every wait of a case (answers normally come in milliseconds; CI machines are loaded) */
const CASE_MS = 10_000;

/** Log lines of the fuzz peer → class; the first matching pattern wins. */
const LOG_CLASSES = [
  ['log:refused-version', /HELLO refused.*is not supported by node/],
  ['log:refused-export', /HELLO refused.*no export/],
  ['log:refused-suite', /HELLO refused.*suite mismatch/],
  ['log:refused-access', /HELLO refused.*may not/],
  ['log:mac', /frame authentication failed/],
  ['log:auth-failed', /authentication failed/],
  ['log:bad-magic', /is not DST2/],
  ['log:bad-version', /protocol version \d+, expected/],
  ['log:unknown-cmd', /unknown command \d+/],
  ['log:payload-too-large', /payload of \d+ bytes exceeds/],
  ['log:tag-too-large', /tag of \d+ bytes exceeds/],
  ['log:reserved', /reserved field/],
  ['log:u64-range', /exceeds 2\^53/],
  ['log:expected-hello', /expected HELLO, got/],
  ['log:expected-auth', /expected AUTH, got/],
  ['log:bad-hello', /bad HELLO/],
  ['log:handshake-tag', /during the handshake/],
  ['log:bad-io-frame', /carries \d+ payload bytes/],
  ['log:unexpected-frame', /unexpected \S+ frame/],
  ['log:io-refused', /request refused/],
  ['log:mid-frame', /closed mid-frame/],
] as const;

const EXPECTED: Record<string, string[]> = {
  none: [
    'log:refused-version', 'log:refused-export', 'log:refused-suite', 'log:bad-magic', 'log:bad-version', 'log:unknown-cmd',
    'log:payload-too-large', 'log:expected-hello', 'log:bad-hello', 'log:bad-io-frame', 'log:unexpected-frame',
    'log:io-refused', 'reply:refused:EPROTO', 'reply:refused:ENOENT', 'reply:io:OK', 'reply:io:EINVAL', 'reply:pong',
  ],
  'aes-gcm': [
    'log:refused-suite', 'log:auth-failed', 'log:bad-magic', 'log:payload-too-large', 'log:bad-hello', 'log:expected-auth',
    'log:mac', 'log:io-refused', 'reply:refused:EPROTO', 'reply:auth:EACCES', 'reply:io:OK', 'reply:io:EINVAL',
  ],
};

interface Ctx {
  port: number;
  suite: Suite;
  key: Buffer | null;
  counter: ClassCounter;
}

/**
 * Move every data-changing IO frame of a plain byte stream that aims below FUZZ_FLOOR above it,
 * reading the stream exactly as the export's decoder does (it stops where the export would).
 */
function guardStream(bytes: Buffer): Buffer {
  const b = Buffer.from(bytes);
  for (let at = 0; at + HEADER_SIZE <= b.length;) {
    let h;
    try {
      h = decodeHeader(b.subarray(at, at + HEADER_SIZE), MAX_PAYLOAD);
    } catch {
      break;
    }
    if (h.cmd === Cmd.IO && h.op !== Op.READ && h.offset < FUZZ_FLOOR) {
      const moved = FUZZ_FLOOR + (h.offset % (SIZE - FUZZ_FLOOR));
      b.writeUInt32BE(0, at + 24);
      b.writeUInt32BE(moved, at + 28);
    }
    at += HEADER_SIZE + h.payloadLength + h.tagLength;
  }
  return b;
}

const frameBytes = (f: FrameInit): Buffer => Buffer.concat(encodeFrame(f));

function helloFields(ctx: Ctx): Hello {
  return {
    version: WIRE_VERSION, exportName: '', sessionId: randomBytes(16), access: Access.READ | Access.WRITE,
    suite: ctx.suite.name, keyId: ctx.key ? keyId(ctx.key) : null, nonce: randomBytes(32),
  };
}

/** A HELLO whose fields are drawn from edge values (each field right most of the time). */
function fuzzedHello(ctx: Ctx, rng: Rng): Hello {
  const h = helloFields(ctx);
  if (rng.chance(0.2)) h.version = rng.pick([0, 1, 3, 255]);
  if (rng.chance(0.2)) h.exportName = rng.pick(['vol', 'other', 'x'.repeat(300), rng.bytes(8).toString('latin1'), rng.pick(PEER_TEXT)]);
  if (rng.chance(0.2)) h.suite = rng.pick(['none', 'aes-gcm', 'NONE', 'chacha20-poly1305', 'aes-cbc+hmac-sha256', '', rng.bytes(6).toString('latin1'), rng.pick(PEER_TEXT)]);
  if (rng.chance(0.2)) h.access = rng.int(256);
  if (rng.chance(0.1)) h.keyId = rng.chance(0.5) ? rng.bytes(8) : null;
  return h;
}

/** Received frames of a peer, parsed as they complete. */
function takeFrame(peer: RawPeer): { cmd: number; status: number; header: Buffer; payload: Buffer; tag: Buffer } | null {
  const b = peer.received;
  if (b.length < HEADER_SIZE) return null;
  const h = decodeHeader(b.subarray(0, HEADER_SIZE), MAX_PAYLOAD);
  const total = HEADER_SIZE + h.payloadLength + h.tagLength;
  if (b.length < total) return null;
  const f = peer.consume(total);
  return {
    cmd: h.cmd, status: h.status, header: Buffer.from(f.subarray(0, HEADER_SIZE)),
    payload: Buffer.from(f.subarray(HEADER_SIZE, HEADER_SIZE + h.payloadLength)), tag: Buffer.from(f.subarray(HEADER_SIZE + h.payloadLength)),
  };
}

async function nextFrame(peer: RawPeer): Promise<ReturnType<typeof takeFrame>> {
  let f: ReturnType<typeof takeFrame> = null;
  await peer.until(() => (f = takeFrame(peer)) !== null, CASE_MS);
  return f;
}

/** A handshaken session: frames sealed (or plain) with our sequence numbers. */
interface Session {
  tx: DirectionKeys;
  rx: DirectionKeys;
  txSeq: number;
  rxSeq: number;
}

function sealFrame(ctx: Ctx, s: Session, f: FrameInit): Buffer {
  const plain = f.payload ?? Buffer.alloc(0);
  if (!ctx.suite.needsKey) return frameBytes(f);
  const header = encodeHeader({
    cmd: f.cmd, op: f.op ?? 0, flags: f.flags ?? 0, status: 0, length: f.length ?? 0, id: f.id ?? 0, offset: f.offset ?? 0,
    ackedBelow: 0, payloadLength: sealedLength(ctx.suite, plain.length), tagLength: ctx.suite.tagLength,
  });
  const sealed = seal(ctx.suite, s.tx, s.txSeq++, header, plain);
  return Buffer.concat([header, sealed.payload, sealed.tag]);
}

/** HELLO (and AUTH with the real key on a sealed suite); the session, or null when refused. */
async function handshake(ctx: Ctx, peer: RawPeer, rng: Rng): Promise<Session | null> {
  const hello = rng.chance(0.7) ? helloFields(ctx) : fuzzedHello(ctx, rng);
  const helloBytes = encodeHello(hello);
  peer.write(frameBytes({ cmd: Cmd.HELLO, payload: helloBytes }));
  const reply = await nextFrame(peer);
  if (!reply) return null;
  if (reply.status !== 0) {
    ctx.counter.add(`reply:refused:${errnoName(reply.status)}`);
    return null;
  }
  if (!ctx.suite.needsKey) return { tx: { enc: Buffer.alloc(0), mac: Buffer.alloc(0) }, rx: { enc: Buffer.alloc(0), mac: Buffer.alloc(0) }, txSeq: 0, rxSeq: 0 };
  const r = decodeHelloReply(reply.payload);
  const keys = deriveSessionKeys(ctx.suite, ctx.key!, hello.nonce, r.nonce);
  const transcript = Buffer.concat([helloBytes, reply.payload]);
  const auth = frameBytes({ cmd: Cmd.AUTH, payload: encodeAuth({ proof: authProof(keys.confirm, 'client', transcript) }) });
  const tamper = rng.int(8);
  if (tamper <= 1) {
    // an edited AUTH (perhaps cut short: the export would wait for the rest) or another frame: our
    // FIN ends it; the export's answer, if any, came before its close
    peer.write(tamper === 0 ? mutate(rng, auth) : frameBytes({ cmd: rng.pick([Cmd.IO, Cmd.PING, Cmd.HELLO]), payload: rng.bytes(rng.int(40)) }));
    await peer.finish(CASE_MS);
    const answer = takeFrame(peer);
    if (answer && answer.status !== 0) ctx.counter.add(`reply:auth:${errnoName(answer.status)}`);
    return null;
  }
  peer.write(auth);
  const answer = await nextFrame(peer);
  if (!answer) return null;
  if (answer.status !== 0) {
    ctx.counter.add(`reply:auth:${errnoName(answer.status)}`);
    return null;
  }
  return { tx: keys.clientToServer, rx: keys.serverToClient, txSeq: 0, rxSeq: 0 };
}

/** One frame of a serving session: valid-looking IO, PING, CLOSE, a frame out of place, or junk. */
function sessionFrame(ctx: Ctx, s: Session, rng: Rng, id: number): Buffer {
  const kind = rng.int(16); // 1-3 end the connection: rarer, so that frames after them are reached too
  if (kind === 0) return sealFrame(ctx, s, { cmd: Cmd.PING, id });
  if (kind === 1) return sealFrame(ctx, s, { cmd: rng.pick([Cmd.HELLO, Cmd.HELLO_REPLY, Cmd.AUTH, Cmd.IO_RESPONSE, Cmd.PONG, Cmd.CLOSE]), id, payload: rng.bytes(rng.int(24)) });
  if (kind === 2) { // oversized: a header announcing more than any frame may carry
    const h = frameBytes({ cmd: Cmd.IO, op: Op.WRITE, id, length: 4096 });
    h.writeUInt32BE(MAX_PAYLOAD + 1 + rng.int(1 << 20), 40);
    return h;
  }
  if (kind === 3) return rng.bytes(1 + rng.int(96));
  const op = rng.chance(0.85) ? rng.pick([Op.READ, Op.WRITE, Op.FLUSH, Op.TRIM, Op.WRITE_ZEROES, Op.DIGEST]) : rng.int(256);
  const length = rng.pick([0, 512, 4096, 65536, 1 + rng.int(8192), 2 * MiB, rng.interesting()]) >>> 0;
  let offset = rng.pick([FUZZ_FLOOR, FUZZ_FLOOR + 4096 * rng.int(1024), SIZE - 512, SIZE, rng.int(SIZE), 0]);
  if (op !== Op.READ && offset < FUZZ_FLOOR) offset = FUZZ_FLOOR;
  const flags = rng.chance(0.8) ? rng.pick([0, 1, 2]) : rng.int(256);
  const bodyLen = op === Op.WRITE && length <= 65536 ? (rng.chance(0.85) ? length : rng.int(4096)) : (rng.chance(0.1) ? rng.int(64) : 0);
  const init: FrameInit = { cmd: Cmd.IO, op, flags, id, offset, length, payload: bodyLen ? rng.bytes(bodyLen) : null };
  const frame = sealFrame(ctx, s, init);
  if (kind === 4 || kind === 5) return mutate(rng, frame); // sealed: an edit anywhere; plain: an edited header or payload
  if ((kind === 6 || kind === 7) && ctx.suite.needsKey) frame[HEADER_SIZE + rng.int(frame.length - HEADER_SIZE)]! ^= 1 << rng.int(8); // payload or tag tampered
  return frame;
}

/** Count the answers of a serving session (opened with the session's keys on a sealed suite). */
function countAnswers(ctx: Ctx, s: Session, peer: RawPeer): void {
  for (let f = takeFrame(peer); f; f = takeFrame(peer)) {
    if (ctx.suite.needsKey && f.tag.length > 0) {
      try {
        open(ctx.suite, s.rx, s.rxSeq++, f.header, f.payload, f.tag);
      } catch {
        ctx.counter.add('reply:unopenable');
        return;
      }
    }
    if (f.cmd === Cmd.IO_RESPONSE) ctx.counter.add(`reply:io:${f.status === 0 ? 'OK' : errnoName(f.status)}`);
    else if (f.cmd === Cmd.PONG) ctx.counter.add('reply:pong');
  }
}

async function wireCase(ctx: Ctx, rng: Rng): Promise<void> {
  const peer = await RawPeer.open({ host: '127.0.0.1', port: ctx.port, localAddress: FUZZ_ADDR });
  const kind = rng.int(8); // 0-3: before or in the handshake; 4-7: a session
  const hello = (): Buffer => frameBytes({ cmd: Cmd.HELLO, payload: encodeHello(fuzzedHello(ctx, rng)) });
  if (kind === 0) {
    // random bytes, sometimes behind a valid magic and version; or a well-formed frame that is not a HELLO
    const junk = rng.bytes(rng.int(200));
    const variant = rng.int(3);
    if (variant === 0) peer.write(junk);
    else if (variant === 1) peer.write(guardStream(Buffer.concat([Buffer.from([0x44, 0x53, 0x54, 0x32, WIRE_VERSION]), junk])));
    else peer.write(guardStream(frameBytes({ cmd: rng.pick([Cmd.HELLO_REPLY, Cmd.AUTH, Cmd.IO, Cmd.PING, Cmd.CLOSE]), payload: junk.subarray(0, rng.int(64)) })));
  } else if (kind === 1) {
    // a HELLO with one header field set to an edge value, or byte edits anywhere in it
    const f = hello();
    const field = rng.pick([[0, 4], [4, 1], [5, 1], [40, 4], [44, 2], [46, 2], [16, 4], [-1, 0]] as const);
    if (field[0] < 0) peer.write(guardStream(mutate(rng, f)));
    else {
      const v = rng.interesting();
      if (field[1] === 4) f.writeUInt32BE(v, field[0]);
      else if (field[1] === 2) f.writeUInt16BE(v & 0xffff, field[0]);
      else f[field[0]] = v & 0xff;
      peer.write(f);
    }
  } else if (kind === 2) {
    // a HELLO whose TLV payload is edited, its length framed to match
    const payload = mutate(rng, encodeHello(fuzzedHello(ctx, rng)));
    peer.write(frameBytes({ cmd: Cmd.HELLO, payload }));
  } else if (kind === 3) {
    // a valid start (HELLO, IO frames) cut anywhere
    const stream = guardStream(Buffer.concat([hello(), frameBytes({ cmd: Cmd.IO, op: Op.WRITE, id: 1, offset: FUZZ_FLOOR, length: 4096, payload: rng.bytes(4096) })]));
    peer.write(stream.subarray(0, rng.int(stream.length)));
  } else {
    const s = await handshake(ctx, peer, rng);
    if (s) {
      const frames: Buffer[] = [];
      for (let i = 0, n = 1 + rng.int(6); i < n; i++) frames.push(sessionFrame(ctx, s, rng, i + 1));
      const stream = Buffer.concat(frames);
      peer.write(ctx.suite.needsKey ? stream : guardStream(stream));
      // our FIN: the export answers what it started, then closes; count what came back
      await peer.finish(CASE_MS);
      countAnswers(ctx, s, peer);
      return;
    }
  }
  await peer.finish(CASE_MS);
}

for (const suiteName of ['none', 'aes-gcm'] as const) {
  test(`wire fuzz on suite ${suiteName}: the export rejects what it must, keeps serving, loses nothing, stays bounded`, async (t) => {
    const config = fuzzConfig(suiteName === 'none' ? 240 : 160, suiteName === 'none' ? 0x5eed0001 : 0x5eed0101);
    const dir = tmpDir(t, 'dst-fz-');
    const key = suiteName === 'none' ? null : makeKeyFile(dir, 'k', 'hex');
    const pair = await startPair(t, { size: SIZE, ...(key ? { crypto: ['--cipher', suiteName, '--cipher-key-file', key.path] } : {}) });
    await pair.exp.dstJson(['security', 'add', pair.exportName, '--addr', FUZZ_ADDR, '--perm', 'rw']);
    const legit = await NbdClient.connect(pair.socket);
    t.after(() => legit.close());
    const ctx: Ctx = { port: Number(pair.listen.split(':').pop()), suite: suiteByName(suiteName), key: key?.key ?? null, counter: new ClassCounter() };
    const figures = await fuzzEngine({
      what: `wire fuzz (${suiteName})`, config, concurrency: 4, engine: pair.exp, legit,
      run: (rng) => wireCase(ctx, rng),
    });
    assert.equal((await pair.show()).state, 'ready', 'the legitimate remote node stayed ready');
    assertCleanLog(pair.exp.log(), `wire fuzz (${suiteName}), export log`);
    ctx.counter.addLines(pair.exp.log(), (l) => l.includes(FUZZ_ADDR), LOG_CLASSES);
    t.diagnostic(`${config.cases} cases from seed ${config.seed}; ${figures}; ${ctx.counter.summary()}`);
    if (config.cases >= 100) ctx.counter.assertReached(EXPECTED[suiteName]!, `wire fuzz (${suiteName}, seed ${config.seed})`);
  });
}
