// ACL entries in IPv4-mapped IPv6 form (::ffff:127.0.0.1, ::ffff:7f00:1, ::ffff:127.0.0.0/104) are
// stored and listed as their IPv4 forms and deny or grant 127.0.0.1 exactly as those do, over IPv4
// and over ::ffff:127.0.0.1 (an export listening on ::); ::/0 is refused, naming 0.0.0.0/0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { constants } from 'node:os';
import { startEngine, type Engine } from '../helpers/engine.js';
import { sparseFile } from '../helpers/tmp.js';
import { WireClient } from '../helpers/wire-client.js';
import { Access } from '../../src/protocol/wire.js';
import type { AclEntry, NodeShow } from '../../src/engine/types.js';

const CASES: { mapped: string; v4: string }[] = [
  { mapped: '::ffff:127.0.0.1', v4: '127.0.0.1' },
  { mapped: '::ffff:7f00:1', v4: '127.0.0.1' },
  { mapped: '::ffff:127.0.0.0/104', v4: '127.0.0.0/8' },
];

/** What 127.0.0.1 gets from `listen` through `host`: the granted access, or the refusal errno. */
async function outcome(listen: string, host: string): Promise<string> {
  const port = listen.slice(listen.lastIndexOf(':') + 1);
  const c = await WireClient.connect(`${host.includes(':') ? `[${host}]` : host}:${port}`);
  try {
    const r = await c.hello({ access: Access.READ | Access.WRITE });
    return r.status === 0 ? `granted ${r.reply!.granted}` : `errno ${r.status}`;
  } finally {
    c.close();
  }
}

async function setAcl(e: Engine, node: string, entries: [string, string][]): Promise<AclEntry[]> {
  for (const a of await e.dstJson<AclEntry[]>(['security', 'list', node])) await e.dstJson(['security', 'del', node, '--addr', a.addr]);
  let acl: AclEntry[] = [];
  for (const [addr, perm] of entries) acl = await e.dstJson<AclEntry[]>(['security', 'add', node, '--addr', addr, '--perm', perm]);
  return acl;
}

test('mapped ACL entries deny and grant 127.0.0.1 exactly as their IPv4 forms, over IPv4 and ::ffff:127.0.0.1', async (t) => {
  const exp = await startEngine(t, { logLevel: 'info' });
  const nodes: { name: string; listen: string; hosts: string[] }[] = [];
  for (const [name, listen, hosts] of [['v4', '127.0.0.1:0', ['127.0.0.1']], ['v6', '[::]:0', ['127.0.0.1', '::ffff:127.0.0.1']]] as const) {
    await exp.dstJson(['node', 'add', name, '--disk', sparseFile(join(exp.dir, `${name}.img`), 1 << 20), '--listen', listen]);
    await exp.dstJson(['security', 'add', name, '--addr', '0.0.0.0/0', '--perm', 'rw']);
    const shown = await exp.dstJson<NodeShow>(['node', 'start', name]);
    nodes.push({ name, listen: shown.listen!, hosts: [...hosts] });
  }

  for (const { mapped, v4 } of CASES) {
    for (const perm of ['none', 'r']) {
      for (const n of nodes) {
        const listed = await setAcl(exp, n.name, [['0.0.0.0/0', 'rw'], [mapped, perm]]);
        assert.deepEqual(listed.map((a) => a.addr), ['0.0.0.0/0', v4], `${mapped} is listed as ${v4}`);
        const viaMapped = await Promise.all(n.hosts.map((h) => outcome(n.listen, h)));
        await setAcl(exp, n.name, [['0.0.0.0/0', 'rw'], [v4, perm]]);
        const viaV4 = await Promise.all(n.hosts.map((h) => outcome(n.listen, h)));
        assert.deepEqual(viaMapped, viaV4, `${mapped} ${perm} on ${n.name} (${n.hosts.join(', ')})`);
        const expected = perm === 'none' ? `errno ${constants.errno.EACCES}` : `granted ${Access.READ}`;
        assert.deepEqual(viaMapped, n.hosts.map(() => expected), `${mapped} ${perm} on ${n.name}`);
      }
    }
  }

  const refused = await exp.dstFail(['security', 'add', 'v6', '--addr', '::/0', '--perm', 'r']);
  assert.equal(refused.code, 1);
  assert.match(refused.error!.message, /never matches IPv4 peers.*add 0\.0\.0\.0\/0/);
});
