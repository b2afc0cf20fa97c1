#!/usr/bin/env node
// Bundles the dashboard (src/web/app/) into dist/web/: one JS and one CSS file, named by their content hash
// (the manager caches them for a year), and index.html naming them (revalidated at each load). No CDN: the
// files are all the page loads. The app is type-checked on its own (DOM types, JSX), apart from the server's build.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const app = path.join(root, 'src/web/app');
const out = path.join(root, 'dist/web');

execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(app, 'tsconfig.json')], { stdio: 'inherit' });
await fs.rm(out, { recursive: true, force: true });
const r = await build({
  entryPoints: [path.join(app, 'main.tsx')],
  bundle: true,
  format: 'esm',
  target: ['chrome110', 'firefox115', 'safari16'],
  minify: true,
  sourcemap: true,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: '[name]-[hash]',
  outdir: out,
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
const outputs = Object.keys(r.metafile.outputs).map((f) => path.basename(f));
const js = outputs.find((f) => f.endsWith('.js'));
const css = outputs.find((f) => f.endsWith('.css'));
const html = (await fs.readFile(path.join(app, 'index.html'), 'utf8')).replace('%JS%', js).replace('%CSS%', css);
await fs.writeFile(path.join(out, 'index.html'), html);
await fs.copyFile(path.join(app, 'favicon.svg'), path.join(out, 'favicon.svg'));
process.stdout.write(`dashboard: dist/web/ (${js}, ${css})\n`);
