// The example app (sdk-wasm/examples/todo) in headless Chromium, two browser contexts,
// against the real server. The page loads the app bundled with esbuild from the package
// installed from its tarball (bundle.mjs); a
// tiny static server here plays the app's backend (its /auth endpoint mints tokens
// with the project's secret key, as a real app's server would). Each context reaches the
// tandem server through a TCP proxy of its own (proxy.mjs), so going offline can cut
// exactly that context's WebSocket: Chromium's offline emulation alone leaves an open
// WebSocket up.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { extname, join, normalize, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freshRoom, holdsFor, startServer, waitFor } from './harness.mjs';
import { bundleApp } from './bundle.mjs';
import { startProxy } from './proxy.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const exampleDir = resolve(here, '../../sdk-wasm/examples/todo');
const artifacts = process.env.TANDEM_ARTIFACTS ?? resolve(here, '../../target/wasm-artifacts');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const people = { alice: { name: 'Alice', color: '#d33' }, bob: { name: 'Bob', color: '#36c' } };

let tandem;
let web;
let browser;
let webBase;
const proxies = [];

before(async () => {
  tandem = await startServer();
  const buildDir = join(artifacts, 'todo-build');
  mkdirSync(buildDir, { recursive: true });
  await bundleApp(join(exampleDir, 'app.js'), buildDir);
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
      const [root, rel] = url.pathname === '/app.bundle.js' ? [buildDir, 'app.bundle.js'] : [exampleDir, url.pathname.slice(1) || 'index.html'];
      const file = normalize(join(root, rel));
      if (!file.startsWith(root)) throw new Error('outside');
      const data = await readFile(file);
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(data);
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
  await Promise.all(proxies.map((p) => p.close()));
  web?.close();
  tandem?.stop();
});

/** Opens the app as `user` in a new context whose WebSocket goes through a proxy of its own. */
async function openAs(user, room) {
  const proxy = await startProxy(tandem.base);
  proxies.push(proxy);
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  const qs = new URLSearchParams({ server: proxy.base, room, auth: `/auth?user=${user}` });
  await page.goto(`${webBase}/index.html?${qs}`);
  await page.waitForFunction(() => document.querySelector('[data-testid=status]').textContent === 'synced', null, { timeout: 20000 });
  return { context, page, errors, proxy };
}

const items = (page) => page.$$eval('[data-testid=items] label', (ls) => ls.map((l) => l.textContent));
/** The status the app shows (it renders the room's `subscribe('status')`). */
const status = (page) => page.textContent('[data-testid=status]');
const online = (s) => s === 'connected' || s === 'synced';

/** The item texts in the server's copy of the room (REST, with the secret key). */
async function serverItems(room) {
  const response = await fetch(`${tandem.base}/v1/rooms/${encodeURIComponent(room)}/document`, {
    headers: { authorization: `Bearer ${tandem.secret}` },
  });
  if (!response.ok) throw new Error(`GET document: ${response.status} ${await response.text()}`);
  return ((await response.json()).todos ?? []).map((t) => t.text);
}

test('two browsers share the to-do list, see each other, and converge after B was offline', async () => {
  const room = freshRoom('todo');
  const a = await openAs('alice', room);
  const b = await openAs('bob', room);
  const syncedMs = await a.page.evaluate(() => window.tandemSyncedMs);
  console.log(`enterRoom → first synced state in the browser: ${syncedMs.toFixed(1)} ms`);

  // A adds an item; B sees it.
  await a.page.fill('[data-testid=new-item]', 'buy milk');
  await a.page.press('[data-testid=new-item]', 'Enter');
  await b.page.waitForFunction(() => document.querySelector('[data-testid=items]').textContent.includes('buy milk'));

  // A's presence (with the name from A's token) shows in B.
  await b.page.waitForSelector('[data-testid=people] span[data-user-id=alice]');
  assert.equal(await b.page.textContent('[data-testid=people] span[data-user-id=alice]'), 'Alice ✎');
  await a.page.screenshot({ path: join(artifacts, 'todo-a.png') });
  await b.page.screenshot({ path: join(artifacts, 'todo-b.png') });

  // B goes offline: the context's network emulation, and B's proxy drops B's open
  // WebSocket and refuses B's reconnects. A's proxy is untouched.
  await b.page.evaluate(() => {
    window.statusLog = [];
    window.tandemRoom.subscribe('status', (s) => window.statusLog.push(s));
  });
  await b.context.setOffline(true);
  b.proxy.cut();
  assert.ok(b.proxy.stats.cut >= 1, 'B had an open connection to cut');
  await waitFor(async () => !online(await status(b.page)), "B's status to leave connected/synced", 10000);
  // The server saw B go: B's presence leaves A.
  await a.page.waitForSelector('[data-testid=people] span[data-user-id=bob]', { state: 'detached', timeout: 10000 });

  // B edits offline; A edits meanwhile.
  await b.page.fill('[data-testid=new-item]', 'offline edit');
  await b.page.press('[data-testid=new-item]', 'Enter');
  await waitFor(async () => (await items(b.page)).includes('offline edit'), "B's offline edit in B's own list", 5000);
  await a.page.fill('[data-testid=new-item]', 'while B was away');
  await a.page.press('[data-testid=new-item]', 'Enter');
  // Barrier: A's later edit has reached the server. B's edit is neither there nor at A,
  // and A's edit is not at B, for a further second.
  await waitFor(async () => (await serverItems(room)).includes('while B was away'), "A's edit at the server", 10000);
  await holdsFor(async () => {
    const [atA, atB, atServer] = [await items(a.page), await items(b.page), await serverItems(room)];
    return (
      JSON.stringify(atA) === JSON.stringify(['buy milk', 'while B was away']) &&
      JSON.stringify(atServer) === JSON.stringify(['buy milk', 'while B was away']) &&
      JSON.stringify(atB) === JSON.stringify(['buy milk', 'offline edit']) &&
      !online(await status(b.page))
    );
  }, 'A and the server without B’s offline edit, B without A’s edit, B not connected', 1000);
  console.log(`B while offline: status ${await status(b.page)}, proxy refused ${b.proxy.stats.refused} reconnect(s)`);
  await a.page.screenshot({ path: join(artifacts, 'todo-a-while-b-offline.png') });
  await b.page.screenshot({ path: join(artifacts, 'todo-b-offline.png') });

  // Back online: B reconnects on its own (the session's backoff; no reload, no
  // reconnect() call) and both converge on the union of all edits.
  const backAt = Date.now();
  await b.context.setOffline(false);
  b.proxy.restore();
  await waitFor(async () => (await status(b.page)) === 'synced', 'B to reconnect and sync by itself', 45000);
  console.log(`B synced again ${Date.now() - backAt} ms after coming back online`);
  await waitFor(async () => {
    const [x, y] = [await items(a.page), await items(b.page)];
    return x.length === 3 && JSON.stringify(x) === JSON.stringify(y);
  }, 'both lists to converge', 15000);
  const [finalA, finalB] = [await items(a.page), await items(b.page)];
  assert.deepEqual(finalA, finalB);
  assert.deepEqual([...finalA].sort(), ['buy milk', 'offline edit', 'while B was away']);
  await waitFor(async () => JSON.stringify(await serverItems(room)) === JSON.stringify(finalA), 'the server to hold the same list', 10000);
  const statusLog = await b.page.evaluate(() => window.statusLog);
  console.log(`B's status while away and back: ${statusLog.join(' → ')}`);
  assert.ok(statusLog.includes('reconnecting'), `B went through reconnecting: ${statusLog}`);
  assert.equal(statusLog.at(-1), 'synced');
  assert.ok(b.proxy.stats.accepted >= 2, 'B reconnected through its proxy');
  await a.page.waitForSelector('[data-testid=people] span[data-user-id=bob]', { timeout: 10000 });
  await a.page.screenshot({ path: join(artifacts, 'todo-a-converged.png') });
  await b.page.screenshot({ path: join(artifacts, 'todo-b-converged.png') });

  // A leaves: its presence disappears from B.
  assert.deepEqual(a.errors, []);
  await a.context.close();
  await b.page.waitForSelector('[data-testid=people] span[data-user-id=alice]', { state: 'detached', timeout: 20000 });
  await b.page.screenshot({ path: join(artifacts, 'todo-b-alone.png') });
  assert.deepEqual(b.errors, []);
  await b.context.close();
  console.log(`screenshots in ${artifacts}`);
});
