// Keys never leave their files (DESIGN §5, §9): with keys in hex, base64 and raw form (printable and
// binary) configured as node keys and ACL keys, used by a working remote and by one with a wrong key
// (failed handshakes are where a careless log dumps "expected … got …"), none of the key bytes, in
// raw, hex, base64 or file form, appears in: `dst config show` (text and --json), the saved config
// file, `crypto show` (--json and text), `node show` / `node list` / `security list` / `status`
// --json, the engines' debug logs, or `dst events --json`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNoWait, startPair } from '../helpers/cluster.js';
import type { Engine, EventStream } from '../helpers/engine.js';
import { findKeyLeaks, makeKeyFile } from '../helpers/keys.js';
import { NbdClient } from '../helpers/nbd-client.js';
import { blockContent } from '../helpers/blocks.js';
import { tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/tools.js';
import type { NodeShow } from '../../src/engine/types.js';

test('no key bytes in config, output, logs or events', async (t) => {
  const dir = tmpDir(t, 'dst-kl-');
  const cipherHex = makeKeyFile(dir, 'cipher.hex', 'hex');
  const hashB64 = makeKeyFile(dir, 'hash.b64', 'base64');
  const aclRaw = makeKeyFile(dir, 'acl.raw', 'raw');                       // printable raw
  const aclBin = makeKeyFile(dir, 'acl.bin', 'raw', randomBytes(48));     // binary raw
  const keys = [cipherHex, hashB64, aclRaw, aclBin];
  // sanity: the needles are found where they are (the check can fail)
  assert.ok(findKeyLeaks(`x ${cipherHex.key.toString('hex')} y`, keys).length > 0);
  assert.ok(findKeyLeaks(Buffer.concat([Buffer.from('z'), aclBin.key]), keys).length > 0);
  assert.ok(findKeyLeaks(readFileSync(hashB64.path), keys).length > 0);

  const streams: EventStream[] = [];
  const crypto = ['--cipher', 'aes-cbc', '--cipher-key-file', cipherHex.path, '--hash', 'sha256', '--hash-key-file', hashB64.path];
  const outputs: { what: string; text: string }[] = [];
  const pair = await startPair(t, {
    size: 4 * 1024 * 1024, crypto,
    beforeNodes: async (exp, rem) => { streams.push(await exp.events(), await rem.events()); },
  });
  const { exp, rem } = pair;

  // More keys on the export: ACL entries bound to the raw keys.
  for (const [addr, k] of [['127.0.0.3', aclRaw], ['10.0.0.0/8', aclBin]] as const) {
    const r = await exp.dst(['security', 'add', pair.exportName, '--addr', addr, '--perm', 'r', '--key-file', k.path, '--json']);
    assert.equal(r.code, 0, r.stderr);
    outputs.push({ what: `security add ${addr} (stdout+stderr)`, text: r.stdout + r.stderr });
  }
  // A second remote node with a wrong hash key (one of the ACL keys): handshakes fail and get logged.
  await rem.dstJson(['node', 'add', 'bad', '--remote', pair.listen, '--export', pair.exportName]);
  const setBad = await rem.dst(['crypto', 'set', 'bad', '--cipher', 'aes-cbc', '--cipher-key-file', cipherHex.path, '--hash', 'sha256', '--hash-key-file', aclRaw.path, '--json']);
  assert.equal(setBad.code, 0, setBad.stderr);
  outputs.push({ what: 'crypto set bad (stdout+stderr)', text: setBad.stdout + setBad.stderr });
  await startNoWait(rem, 'bad');
  await waitFor('node bad refused', async () => (await rem.dstJson<NodeShow>(['node', 'show', 'bad'])).state === 'backoff', 15_000);
  // And a crypto set whose output we keep, on a remote that works, with data moving.
  const setGood = await rem.dst(['crypto', 'set', pair.remoteName, '--threads', '2']);
  outputs.push({ what: 'crypto set vol (text)', text: setGood.stdout + setGood.stderr });
  await rem.dst(['node', 'reconnect', pair.remoteName]);
  await rem.waitForState(pair.remoteName, 'ready', 15_000);
  const nbd = await NbdClient.connect(pair.socket);
  t.after(() => nbd.close());
  await nbd.write(0, blockContent(0, 1));
  assert.ok((await nbd.read(0, 4096)).equals(blockContent(0, 1)));

  const grab = async (e: Engine, side: string, args: string[]): Promise<void> => {
    const r = await e.dst(args);
    assert.equal(r.code, 0, `${side}: dst ${args.join(' ')}: ${r.stderr}`);
    outputs.push({ what: `${side}: dst ${args.join(' ')}`, text: r.stdout + r.stderr });
  };
  for (const [e, side, nodes] of [[exp, 'export', [pair.exportName]], [rem, 'remote', [pair.remoteName, 'bad']]] as const) {
    await grab(e, side, ['config', 'show']);
    await grab(e, side, ['config', 'show', '--json']);
    await grab(e, side, ['status', '--json']);
    await grab(e, side, ['node', 'list', '--json']);
    for (const n of nodes) {
      await grab(e, side, ['crypto', 'show', n, '--json']);
      await grab(e, side, ['crypto', 'show', n]);
      await grab(e, side, ['node', 'show', n, '--json']);
      await grab(e, side, ['node', 'show', n]);
    }
    const saved = join(dir, `${side}.conf`);
    await grab(e, side, ['config', 'save', saved]);
    outputs.push({ what: `${side}: saved config file ${saved}`, text: readFileSync(saved, 'utf8') });
  }
  await grab(exp, 'export', ['security', 'list', pair.exportName, '--json']);
  await grab(exp, 'export', ['security', 'list', pair.exportName]);

  // The config does name the key files (paths, not bytes): proves we looked at the right output.
  const cfg = outputs.find((o) => o.what === 'export: dst config show')!.text;
  assert.ok(cfg.includes(cipherHex.path), `config show names the key file path:\n${cfg}`);
  assert.ok(cfg.includes(aclRaw.path), 'config show names the ACL key file path');
  const cshow = JSON.parse(outputs.find((o) => o.what === `export: dst crypto show ${pair.exportName} --json`)!.text) as { cipherKeyFile: string; hashKeyFile: string };
  assert.equal(cshow.cipherKeyFile, cipherHex.path);
  assert.equal(cshow.hashKeyFile, hashB64.path);

  for (const o of outputs) {
    const leaks = findKeyLeaks(o.text, keys);
    assert.deepEqual(leaks, [], `${o.what} leaks key material: ${leaks.join('; ')}`);
  }
  for (const [side, e] of [['export', exp], ['remote', rem]] as const) {
    const log = readFileSync(e.logFile);
    assert.match(log.toString('utf8'), / debug |"level":"debug"/, `${side} log is at debug level`);
    const leaks = findKeyLeaks(log, keys);
    assert.deepEqual(leaks, [], `${side} engine log leaks key material: ${leaks.join('; ')}`);
  }
  const [expEv, remEv] = streams as [EventStream, EventStream];
  assert.ok(remEv.records.some((r) => r.node === 'bad' && r.event === 'state-changed'), 'the events stream saw the failing node');
  assert.ok(expEv.records.some((r) => r.event === 'connected'), 'the events stream saw the working session');
  for (const [side, ev] of [['export', expEv], ['remote', remEv]] as const) {
    const text = ev.records.map((r) => JSON.stringify(r)).join('\n');
    const leaks = findKeyLeaks(text, keys);
    assert.deepEqual(leaks, [], `${side} events leak key material: ${leaks.join('; ')}`);
  }
});
