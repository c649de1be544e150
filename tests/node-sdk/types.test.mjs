// The package's types, as installed from the tarball, checked by `tsc --noEmit` in the
// temporary project: the typed example (ESM and CJS) compiles, and every line of
// must-fail.ts is rejected (an unused @ts-expect-error is itself an error).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { projectDir } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

function check(files) {
  const dir = join(projectDir, 'typecheck');
  mkdirSync(dir, { recursive: true });
  cpSync(join(here, 'types'), dir, { recursive: true });
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2022', 'DOM', 'DOM.Iterable'],
        types: [],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        typeRoots: [],
      },
      files,
    }),
  );
  return spawnSync(process.execPath, [tsc, '-p', dir], { cwd: dir, encoding: 'utf8', timeout: 120000 });
}

test('the typed example compiles against the installed package (ESM and CJS)', () => {
  const run = check(['example.ts', 'example.cts', 'express-like.ts']);
  assert.equal(run.status, 0, run.stdout + run.stderr);
});

test('wrong calls are type errors', () => {
  const run = check(['must-fail.ts']);
  assert.equal(run.status, 0, run.stdout + run.stderr);
});
