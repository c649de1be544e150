// CodeMirror 6 with y-codemirror.next (yCollab) on @tandem/client in two headless Chromium
// contexts against the real server: text typed in each converges, and each sees the
// other's cursor labelled with the name from the other's token.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freshRoom, startServer, waitFor } from './harness.mjs';
import { bundleApp } from './bundle.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.TANDEM_ARTIFACTS ?? resolve(here, '../../target/wasm-artifacts');
const buildDir = join(artifacts, 'codemirror-build');
const people = { carol: { name: 'Carol', color: '#2a2' }, dan: { name: 'Dan', color: '#a2a' } };

let tandem;
let web;
let browser;
let webBase;

before(async () => {
  mkdirSync(buildDir, { recursive: true });
  tandem = await startServer();
  await bundleApp('codemirror.js', buildDir);
  web = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    try {
      if (req.method === 'POST' && url.pathname === '/auth') {
        let body = '';
        for await (const chunk of req) body += chunk;
        const user = url.searchParams.get('user');
        const token = await tandem.mintToken(user, JSON.parse(body).room, people[user]);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }));
        return;
      }
      const files = { '/codemirror.html': [join(here, 'apps', 'codemirror.html'), 'text/html'], '/codemirror.bundle.js': [join(buildDir, 'codemirror.bundle.js'), 'text/javascript'] };
      const [file, type] = files[url.pathname] ?? [];
      if (!file) throw new Error('not found');
      res.writeHead(200, { 'content-type': type }).end(await readFile(file));
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => web.listen(0, '127.0.0.1', r));
  webBase = `http://127.0.0.1:${web.address().port}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  web?.close();
  tandem?.stop();
});

async function openAs(user, room) {
  const context = await browser.newContext({ viewport: { width: 700, height: 260 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${webBase}/codemirror.html?${new URLSearchParams({ server: tandem.base, room, user })}`);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'synced', null, { timeout: 20000 });
  return { context, page, errors };
}

test('two CodeMirror editors (y-codemirror.next) share text and named cursors', async () => {
  const room = freshRoom('codemirror');
  const a = await openAs('carol', room);
  const b = await openAs('dan', room);
  await a.page.click('.cm-content');
  await a.page.keyboard.type('let x = 1;');
  await b.page.waitForFunction(() => window.code() === 'let x = 1;');
  await b.page.click('.cm-content');
  await b.page.keyboard.press('End');
  await b.page.keyboard.type(' // dan');
  await waitFor(async () => (await a.page.evaluate(() => window.code())) === 'let x = 1; // dan', 'B’s text at A');
  // yCollab draws the remote caret with the user's name (from the server-stamped presence).
  await a.page.waitForFunction(() => [...document.querySelectorAll('.cm-ySelectionInfo')].some((e) => e.textContent === 'Dan'), null, { timeout: 10000 });
  await b.page.waitForFunction(() => [...document.querySelectorAll('.cm-ySelectionInfo')].some((e) => e.textContent === 'Carol'), null, { timeout: 10000 });
  await a.page.screenshot({ path: join(artifacts, 'codemirror-a.png') });
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  await a.context.close();
  await b.context.close();
});
