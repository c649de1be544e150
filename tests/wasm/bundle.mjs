// Bundles a test app (tests/wasm/apps) with esbuild as a user's project would: the entry
// is copied into the temporary project that installed the package tarball, so every
// bare import (`@tandem/client`, `yjs`, `y-prosemirror`, React…) resolves there, to one
// copy of each.
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { clientDir } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));

async function esbuild() {
  return import(pathToFileURL(join(clientDir, 'node_modules', 'esbuild', 'lib', 'main.js')).href);
}

/**
 * Bundles `entry` (a file of apps/, or an absolute path) into `outDir/<name>.bundle.js`
 * (minified ESM); returns its path.
 */
export async function bundleApp(entry, outDir, { jsx = false, production = true } = {}) {
  const src = join(clientDir, 'src');
  mkdirSync(src, { recursive: true });
  const from = entry.startsWith('/') ? entry : resolve(here, 'apps', entry);
  const file = basename(from);
  const copied = join(src, file);
  copyFileSync(from, copied);
  const name = file.replace(/\.(jsx?|mjs)$/, '');
  const outfile = join(outDir, `${name}.bundle.js`);
  const { build } = await esbuild();
  await build({
    entryPoints: [copied],
    bundle: true,
    format: 'esm',
    minify: true,
    outfile,
    absWorkingDir: clientDir,
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': production ? '"production"' : '"development"' },
    ...(jsx ? { jsx: 'automatic', loader: { '.js': 'jsx' } } : {}),
  });
  return outfile;
}

/**
 * Sizes of `@tandem/client` as an app ships it (minified, gzipped): the package with
 * its own dependencies (y-protocols, lib0 parts) and without `yjs` (the app has it
 * anyway for its editor binding), and everything including `yjs`.
 */
export async function measureBundle() {
  const src = join(clientDir, 'src');
  mkdirSync(src, { recursive: true });
  const entry = join(src, 'size-entry.js');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(entry, "import { createClient } from '@tandem/client';\nglobalThis.createClient = createClient;\n");
  const { build } = await esbuild();
  const sizes = {};
  for (const [label, external] of [['withoutYjs', ['yjs']], ['withYjs', []]]) {
    const result = await build({ entryPoints: [entry], bundle: true, format: 'esm', minify: true, write: false, external, absWorkingDir: clientDir, logLevel: 'warning' });
    const code = result.outputFiles[0].contents;
    sizes[label] = { raw: code.length, gzip: gzipSync(code, { level: 9 }).length };
  }
  return sizes;
}

export function readText(path) {
  return readFileSync(path, 'utf8');
}
