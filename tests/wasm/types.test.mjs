// The package's .d.ts, type-checked: `tsc --noEmit` (the project's TypeScript) on a typed
// example app with expect-type-style assertions and `@ts-expect-error` lines that must not
// compile, run inside the project that installed the tarball.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientDir } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));

test('tsc --noEmit accepts the typed example and refuses the calls that must not compile', () => {
  const dir = join(clientDir, 'types-check');
  mkdirSync(dir, { recursive: true });
  cpSync(resolve(here, 'types'), dir, { recursive: true });
  const tsc = join(clientDir, 'node_modules', 'typescript', 'bin', 'tsc');
  let output = '';
  try {
    output = execFileSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    assert.fail(`tsc failed:\n${error.stdout}${error.stderr}`);
  }
  assert.equal(output.trim(), '');
});
