// Shared test helpers: the real `tandem` binary on 127.0.0.1 port 0 with a fresh data
// directory, tokens minted with its secret key, the @tandem/client package as installed
// from its tarball (scripts/test-wasm.sh sets TANDEM_CLIENT_DIR), and bounded waits.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const clientDir = process.env.TANDEM_CLIENT_DIR;
if (!clientDir) throw new Error('TANDEM_CLIENT_DIR is not set: run scripts/test-wasm.sh');
export const packageDir = join(clientDir, 'node_modules', '@tandem', 'client');

/** Imports an entry of the installed package the way the temporary project would. */
export async function importPackage(entry = 'index.js') {
  return import(pathToFileURL(join(packageDir, entry)).href);
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

/** Polls `cond` every 20 ms for `ms` and fails as soon as it is falsy (a bounded "never"). */
export async function holdsFor(cond, label, ms) {
  const deadline = Date.now() + ms;
  do {
    if (!(await cond())) throw new Error(`${label} stopped holding`);
    await new Promise((r) => setTimeout(r, 20));
  } while (Date.now() < deadline);
}

/** Starts `tandem serve`; resolves to { base, secret, mintToken, stop }. */
export async function startServer(options = {}) {
  const target = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/tandem/target');
  const bin = process.env.TANDEM_BIN || join(target, 'debug', 'tandem');
  // With `dataDir`, serves an existing data directory (a restart) and leaves it in place.
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'tandem-wasm-'));
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.TEST_LOG ? 'debug' : 'warn' },
  });
  let out = '';
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  /** SIGKILL, keeping the data directory; resolves once the process is gone. */
  const kill9 = () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  child.stderr.on('data', (d) => process.env.TEST_LOG && process.stderr.write(d));
  try {
    const { base, secret } = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${out}`)), 30000);
      child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${out}`)));
      child.stdout.on('data', (d) => {
        out += d;
        const base = out.match(/listening on (http:\/\/[0-9.:]+)/)?.[1];
        const secret = out.match(/secret key: (sk_[A-Za-z0-9_\-]+)/)?.[1];
        // A restart does not print the key again: the caller passes the one it had.
        if (base && (secret || options.secret)) {
          clearTimeout(timer);
          resolve({ base, secret: secret ?? options.secret });
        }
      });
    });
    child.stdout.resume();
    async function mintToken(userId, room, userInfo = {}, scopes = ['room:write', 'room:presence:write'], expiresIn) {
      const response = await fetch(`${base}/v1/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ userId, userInfo, permissions: { [room]: scopes }, ...(expiresIn ? { expiresIn } : {}) }),
      });
      if (!response.ok) throw new Error(`POST /v1/tokens: ${response.status} ${await response.text()}`);
      return (await response.json()).token;
    }
    return { base, secret, mintToken, stop, kill9, dataDir, pid: child.pid };
  } catch (error) {
    stop();
    throw error;
  }
}

let roomCounter = 0;
/** A room name no other test uses. */
export function freshRoom(prefix = 'room') {
  roomCounter += 1;
  return `${prefix}-${process.pid}-${Date.now()}-${roomCounter}`;
}
