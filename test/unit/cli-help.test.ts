// The CLI in-process: --version, --help and every control command's help text, completion; none connects.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { FAMILY } from '../../src/netlink/family.js';
import { run } from '../helpers/cli-harness.js';

describe('global behaviour', () => {
  test('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await run(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.out.trim(), pkg.version);
    assert.equal(r.sockets.length, 0);
  });

  test('--help lists the command groups and exits 0 without connecting', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    for (const word of ['engine', 'node', 'security', 'crypto', 'status', 'events', 'config', 'completion']) {
      assert.match(r.out, new RegExp(`dst ${word}`));
    }
    assert.equal(r.err, '');
    assert.equal(r.sockets.length, 0);
  });

  test('node --help lists the subcommands', async () => {
    const r = await run(['node', '--help']);
    assert.equal(r.code, 0);
    for (const sub of ['add', 'start', 'stop', 'del', 'reconnect', 'list', 'show', 'set']) assert.match(r.out, new RegExp(`dst node ${sub}`));
  });

  test('every command of the control table has a CLI command whose help is the table\'s help text', async () => {
    for (const spec of Object.values(FAMILY)) {
      if (spec.cli === null) continue;
      const r = await run([...spec.cli.split(' '), '--help']);
      assert.equal(r.code, 0, `dst ${spec.cli} --help: ${r.err}`);
      assert.match(r.out, new RegExp(`^dst ${spec.cli}\\b`), spec.cli);
      // yargs wraps the description; compare with whitespace collapsed
      assert.ok(r.out.replace(/\s+/g, ' ').includes(spec.help.replace(/\s+/g, ' ')), `dst ${spec.cli} --help shows "${spec.help}"`);
    }
  });

  test('completion prints a shell script', async () => {
    const r = await run(['completion']);
    assert.equal(r.code, 0);
    assert.match(r.out, /dst-completions/);
  });
});
