// Test helpers: the real `tandem` binary on 127.0.0.1 port 0 with a fresh data
// directory and a short usage flush interval, headless Chromium, screenshots, and
// bounded waits.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const target = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/tandem/target');
export const artifacts = process.env.TANDEM_ARTIFACTS || join(target, 'dashboard-artifacts');
mkdirSync(artifacts, { recursive: true });

/** Polls `cond` every 50 ms until it is truthy; fails after `ms`. */
export async function waitFor(cond, label, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await cond();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts `tandem serve`; resolves to { base, wsBase, stop }. */
export async function startServer() {
  const bin = process.env.TANDEM_BIN || join(target, 'debug', 'tandem');
  const dataDir = mkdtempSync(join(tmpdir(), 'tandem-dashboard-'));
  const child = spawn(
    bin,
    // Webhooks to a receiver on 127.0.0.1 over http (webhooks.test.mjs).
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--usage-flush-interval', '1s', '--webhook-allow-private', '--webhook-allow-http'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.TEST_LOG ? 'debug' : 'warn' } },
  );
  let out = '';
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  };
  child.stderr.on('data', (d) => process.env.TEST_LOG && process.stderr.write(d));
  try {
    const base = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${out}`)), 30000);
      child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${out}`)));
      child.stdout.on('data', (d) => {
        out += d;
        const found = out.match(/listening on (http:\/\/[0-9.:]+)/)?.[1];
        if (found) {
          clearTimeout(timer);
          resolve(found);
        }
      });
    });
    child.stdout.resume();
    return { base, wsBase: base.replace(/^http/, 'ws'), stop };
  } catch (error) {
    stop();
    throw error;
  }
}

/** Headless Chromium (Debian's). */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/** A full-page screenshot into the artifacts folder. */
export async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}
