// The committed sdk-node/src/schema.ts equals a fresh openapi-typescript generation from
// openapi/openapi.json (as the spec itself is checked against the server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

test('sdk-node/src/schema.ts is generated from the current openapi/openapi.json', () => {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'gen-node-types.sh');
  const run = spawnSync('bash', [script, '--check'], { encoding: 'utf8', timeout: 120000 });
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}\nrun scripts/gen-node-types.sh and commit sdk-node/src/schema.ts`);
});
