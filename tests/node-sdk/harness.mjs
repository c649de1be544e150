// Shared test helpers: the real `tandem` binary on 127.0.0.1 port 0 with a fresh data
// directory (its first start prints the admin's password and a secret key), the
// @tandem/node package as installed from its tarball into a fresh project
// (scripts/test-node-sdk.sh sets TANDEM_NODE_PROJECT), and bounded waits.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const projectDir = process.env.TANDEM_NODE_PROJECT;
if (!projectDir) throw new Error('TANDEM_NODE_PROJECT is not set: run scripts/test-node-sdk.sh');

/** The package's ESM entry, resolved from the temporary project (its `exports` "import"). */
export async function importSdk() {
  return import(pathToFileURL(join(projectDir, 'esm-entry.mjs')).href);
}

/** The package's CommonJS entry, resolved from the temporary project (its `exports` "require"). */
export function requireSdk() {
  return createRequire(join(projectDir, 'package.json'))('@tandem/node');
}

/** Polls `cond` every 20 ms until it is truthy; fails after `ms`. */
export async function waitFor(cond, label, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await cond();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts `tandem serve` (without --allow-anonymous); resolves to
 * { base, secret, email, password, stop, pid }. `plans` is a plans TOML text.
 */
export async function startServer({ plans, args: extra = [] } = {}) {
  const target = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/tandem/target');
  const bin = process.env.TANDEM_BIN || join(target, 'debug', 'tandem');
  const dataDir = mkdtempSync(join(tmpdir(), 'tandem-node-sdk-'));
  const args = ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir];
  if (plans) {
    const file = join(dataDir, 'plans.toml');
    writeFileSync(file, plans);
    args.push('--plans', file);
  }
  args.push(...extra);
  const child = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.TEST_LOG ? 'debug' : 'warn' },
  });
  let out = '';
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  };
  child.stderr.on('data', (d) => process.env.TEST_LOG && process.stderr.write(d));
  try {
    const found = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${out}`)), 30000);
      child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${out}`)));
      child.stdout.on('data', (d) => {
        out += d;
        const base = out.match(/listening on (http:\/\/[0-9.:]+)/)?.[1];
        const secret = out.match(/secret key: (sk_[A-Za-z0-9_-]+)/)?.[1];
        const login = out.match(/email (\S+)\s+password (\S+)/);
        if (base && secret && login) {
          clearTimeout(timer);
          resolve({ base, secret, email: login[1], password: login[2] });
        }
      });
    });
    child.stdout.resume();
    return { ...found, stop, pid: child.pid };
  } catch (error) {
    stop();
    throw error;
  }
}

/** Signs in as the first-start admin and creates a personal access token; returns { pat, tenantId }. */
export async function createPat(server) {
  const login = await fetch(`${server.base}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: server.email, password: server.password }),
  });
  if (!login.ok) throw new Error(`login: ${login.status} ${await login.text()}`);
  const cookie = login.headers.get('set-cookie').split(';')[0];
  const me = await (await fetch(`${server.base}/v1/auth/me`, { headers: { cookie } })).json();
  const tenantId = me.tenants[0].id;
  const created = await fetch(`${server.base}/v1/tenants/${tenantId}/personal-access-tokens`, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'node sdk test' }),
  });
  if (created.status !== 201) throw new Error(`create PAT: ${created.status} ${await created.text()}`);
  return { pat: (await created.json()).key, tenantId };
}

let roomCounter = 0;
/** A room name no other test uses. */
export function freshRoom(prefix = 'room') {
  roomCounter += 1;
  return `${prefix}-${process.pid}-${roomCounter}`;
}
