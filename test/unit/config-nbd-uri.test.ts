// Config file with an export whose disk is an NBD URI (issue 17): `disk = nbd://…` and
// `nbd+unix://…?socket=…` load as written (never made a path), and save → load keeps them.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { formatConfig, parseConfigText } from '../../src/engine/config.js';
import type { ExportConfig } from '../../src/engine/types.js';

const F = '/etc/dst/dst.conf';
const TCP = 'nbd://ceph-gw.example:10809/rbd-vol';
const UNIX = 'nbd+unix:///disk?socket=/run/qemu-nbd.sock';

const TEXT = `[node "tcp"]
role = export
disk = "${TCP}"
listen = "0.0.0.0:10825"
[node "unix"]
role = export
disk = ${UNIX}
listen = "0.0.0.0:10826"
readonly = true
`;

test('an export with an NBD URI disk: loaded as written, saved and loaded again unchanged', () => {
  const first = parseConfigText(TEXT, F);
  const disks = first.nodes.map((n) => (n as ExportConfig).disk);
  assert.deepEqual(disks, [TCP, UNIX], 'the URIs are kept as written, not made absolute paths');
  const saved = formatConfig({ logLevel: null, autosave: null, metricsListen: null, nodes: first.nodes });
  assert.ok(saved.includes(`disk = ${JSON.stringify(TCP)}`) && saved.includes(`disk = ${JSON.stringify(UNIX)}`), saved);
  assert.deepEqual(parseConfigText(saved, F).nodes, first.nodes);
});
