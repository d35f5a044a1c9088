#!/usr/bin/env node
// `npm run build` (after tsc): bundle the CLI into one file, dist/src/cli.bundle.js, so that a
// `dst` call loads one module instead of ~150 (yargs, chalk, the commands, the control client):
// start-up is what scripts that drive hundreds of nodes pay per call (bench/startup.ts measures it).
//
// Input is tsc's output, so the bundle is exactly the compiled code. It sits next to
// dist/src/cli.js so that every path relative to the module (package.json, lazily loaded modules)
// means the same in both. What stays a separate file, loaded from dist/src at run time:
//   - the engine and the demo: loaded only by `dst engine` / `dst demo` (start-up does not matter
//     there), and they find their workers and the native addon relative to their own files;
//   - util/errors.js: the one error class, shared with the engine so `instanceof DstError` (which
//     decides exit codes in src/cli.ts) holds for the engine's errors too.
// bin/dst uses the bundle only when it is newer than dist/src/cli.js, so a tsc-only rebuild never
// runs stale CLI code.
import { build } from 'esbuild';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'dist', 'src');
const ENTRY = join(src, 'cli.js');
const BUNDLE = join(src, 'cli.bundle.js');
const SEPARATE = new Set(['engine/engine.js', 'demo.js', 'util/errors.js'].map((p) => join(src, ...p.split('/'))));

/** Resolve each import; the SEPARATE ones stay imports of the file in dist/src. */
const separateFiles = {
  name: 'separate-files',
  setup(b) {
    b.onResolve({ filter: /^\./ }, (args) => {
      const file = join(args.resolveDir, args.path);
      if (!SEPARATE.has(file)) return undefined;
      return { path: `./${relative(src, file).split(sep).join('/')}`, external: true };
    });
  },
};

/**
 * string-width builds an Intl.Segmenter when its module is evaluated, with ICU's segmentation data
 * (~10 ms, a sixth of a `dst --version`), and yargs measures the matched command's help text before
 * running it (so every `dst status` paid it too). Importers get a stand-in:
 * printable ASCII is one column a character, which string-width would answer too; anything else
 * goes to string-width, require()d on that first call (esbuild evaluates a require()d module only then).
 */
const LAZY_STRING_WIDTH = 'export default function stringWidth(text, options) { return typeof text === "string" && /^[\\x20-\\x7e]*$/.test(text) ? text.length : require("string-width").default(text, options); }';
const lazyStringWidth = {
  name: 'lazy-string-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, (args) => (args.kind === 'import-statement' ? { path: 'lazy', namespace: 'lazy-string-width' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'lazy-string-width' }, () => ({ contents: LAZY_STRING_WIDTH, resolveDir: root, loader: 'js' }));
  },
};

await build({
  entryPoints: [ENTRY],
  outfile: BUNDLE,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  // keep function and class names: internal errors print their stack
  keepNames: true,
  legalComments: 'none',
  logLevel: 'warning',
  // the CommonJS dependencies (yargs' helpers, netlink's structs) call require(), which ESM lacks
  banner: { js: "import { createRequire as __dstCreateRequire } from 'node:module'; const require = __dstCreateRequire(import.meta.url);" },
  plugins: [separateFiles, lazyStringWidth],
});
