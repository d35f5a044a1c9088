// The CLI in-process (issue 17): a --disk that is an NBD URI is sent as written (never made
// absolute); --create with it, or a malformed URI, is a usage error (exit 2) naming the URI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run, exportNode, ok } from '../helpers/cli-harness.js';

test('node add --disk nbd://… and nbd+unix://…: the URI as written; --create or a bad URI → exit 2 naming it', async () => {
  for (const uri of ['nbd://192.0.2.1:10809/img', 'nbd+unix:///vol?socket=/run/qemu.sock']) {
    const r = await run(['node', 'add', 'vol', '--disk', uri, '--listen', '0.0.0.0:10825'], { responses: { 'node-add': ok(exportNode({ disk: uri })) } });
    assert.equal(r.code, 0, r.err);
    assert.equal((r.calls[0]!.args as { disk: string }).disk, uri);
  }
  const create = await run(['node', 'add', 'vol', '--disk', 'nbd://h/e', '--listen', '0.0.0.0:1', '--create', '1G']);
  assert.equal(create.code, 2);
  assert.equal(create.calls.length, 0);
  assert.match(create.err, /--create cannot be used with --disk nbd:\/\/h\/e/);
  const bad = await run(['node', 'add', 'vol', '--disk', 'nbd+unix:///e', '--listen', '0.0.0.0:1']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /NBD URI nbd\+unix:\/\/\/e: nbd\+unix:\/\/ needs \?socket=PATH/);
});
