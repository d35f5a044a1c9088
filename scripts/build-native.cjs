#!/usr/bin/env node
// `npm install` / `npm ci` hook: build native/cipher.c (the in-place cipher) and native/flock.c
// (the disk lock; see those files) with the node-gyp that ships with npm, against the headers of
// the Node that runs this script, never downloaded ones. A machine without a C compiler or Node's
// headers still gets a working dst: the build failure is reported, dst uses node:crypto (slower for
// large encrypted frames) and does not lock disks across processes; `dst status` says which runs.
// CommonJS: it runs before anything is compiled.
'use strict';
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { dirname, join } = require('node:path');

const root = join(__dirname, '..');
const prefix = dirname(dirname(process.execPath));
const headers = join(prefix, 'include', 'node', 'node_api.h');
const nodeGyp = process.env.npm_config_node_gyp || join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');

function skip(why) {
  process.stderr.write(`dst: native addon not built (${why}); dst will use node:crypto for encrypted frames and not lock disks across processes\n`);
  process.exit(0);
}

if (!existsSync(headers)) skip(`no Node headers at ${headers}`);
if (!existsSync(nodeGyp)) skip(`node-gyp not found at ${nodeGyp}`);
const r = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${prefix}`], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (r.status !== 0) {
  process.stderr.write(`${r.stdout}${r.stderr}`.split('\n').slice(-25).join('\n'));
  skip(r.error ? r.error.message : `node-gyp exited ${r.status}`);
}
