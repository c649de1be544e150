// Two ProseMirror editors (y-prosemirror's sync, cursor and undo plugins) on
// @tandem/client in two headless Chromium contexts against the real server, bundled with
// esbuild from the installed package (bundle.mjs). Text, formatting and named cursors
// cross over; undo undoes only local edits; a 3 s token is refreshed in band with no new
// socket; one context goes offline, edits, reloads from IndexedDB, reconnects and
// converges; and "saved" means on disk: the server is SIGKILLed the moment the page
// shows it, and the restarted server has the edit. Screenshots go to $TANDEM_ARTIFACTS.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freshRoom, startServer, waitFor } from './harness.mjs';
import { startProxy } from './proxy.mjs';
import { bundleApp, measureBundle } from './bundle.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.TANDEM_ARTIFACTS ?? resolve(here, '../../target/wasm-artifacts');
const buildDir = join(artifacts, 'editor-build');
const people = { alice: { name: 'Alice', color: '#d33' }, bob: { name: 'Bob', color: '#36c' } };

let tandem;
let restarted;
let web;
let browser;
let webBase;
const proxies = [];

before(async () => {
  mkdirSync(buildDir, { recursive: true });
  tandem = await startServer();
  await bundleApp('editor.js', buildDir);
  web = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    try {
      if (req.method === 'POST' && url.pathname === '/auth') {
        let body = '';
        for await (const chunk of req) body += chunk;
        const user = url.searchParams.get('user');
        const ttl = Number(url.searchParams.get('ttl')) || undefined;
        const token = await tandem.mintToken(user, JSON.parse(body).room, people[user], undefined, ttl);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }));
        return;
      }
      const files = { '/editor.html': [join(here, 'apps', 'editor.html'), 'text/html'], '/editor.bundle.js': [join(buildDir, 'editor.bundle.js'), 'text/javascript'] };
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
  await Promise.all(proxies.map((p) => p.close()));
  web?.close();
  restarted?.stop();
  tandem?.stop();
});

/** Opens the editor as `user` in a new context whose WebSocket goes through a proxy of its own. */
async function openAs(user, room, extra = {}) {
  const proxy = await startProxy(tandem.base);
  proxies.push(proxy);
  const context = await browser.newContext({ viewport: { width: 900, height: 420 } });
  const page = await context.newPage();
  const errors = [];
  const sockets = [];
  page.on('pageerror', (e) => errors.push(e));
  page.on('websocket', (ws) => sockets.push(ws.url()));
  const url = `${webBase}/editor.html?${new URLSearchParams({ server: proxy.base, room, user, ...extra })}`;
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'synced', null, { timeout: 20000 });
  return { context, page, errors, sockets, proxy, url };
}

const text = (page) => page.evaluate(() => window.editorText());
const status = (page) => page.textContent('#status');

async function typeAtEnd(page, chars) {
  await page.evaluate(() => {
    const { view } = window;
    view.focus();
    const end = view.state.doc.content.size - 1;
    view.dispatch(view.state.tr.setSelection(view.state.selection.constructor.near(view.state.doc.resolve(end))));
  });
  await page.keyboard.type(chars);
}

/** Ends y-prosemirror's undo capture group, so the next edit is an undo step of its own. */
const stopCapturing = (page) =>
  page.evaluate(() => {
    const plugin = window.view.state.plugins.find((p) => p.spec.key?.key?.startsWith('y-undo'));
    plugin.getState(window.view.state).undoManager.stopCapturing();
  });

test('two ProseMirror editors share text, formatting and named cursors; refresh in band; offline with IndexedDB; saved means on disk', async () => {
  const sizes = await measureBundle();
  console.log(
    `@tandem/client bundle (esbuild --minify, gzip -9): ${sizes.withoutYjs.gzip} B without yjs (${sizes.withoutYjs.raw} B raw), ` +
      `${sizes.withYjs.gzip} B with yjs (${sizes.withYjs.raw} B raw); no WebAssembly`,
  );
  const room = freshRoom('editor');
  const a = await openAs('alice', room, { ttl: '3' });
  const b = await openAs('bob', room, { offline: '1' });
  for (const [who, p] of [['A', a], ['B', b]]) {
    console.log(`${who}: enterRoom → first synced state in Chromium: ${(await p.page.evaluate(() => window.syncedMs)).toFixed(1)} ms`);
  }
  assert.equal(await a.page.textContent('#me'), 'Alice', 'the client learned its name from the server');

  // Both type; the text crosses over.
  await typeAtEnd(a.page, 'Hello from Alice.');
  await b.page.waitForFunction(() => window.editorText().includes('Hello from Alice.'));
  await typeAtEnd(b.page, ' Bob was here.');
  await waitFor(async () => (await text(a.page)) === 'Hello from Alice. Bob was here.', 'both texts at A');
  assert.equal(await text(b.page), 'Hello from Alice. Bob was here.');

  // Formatting: A makes "Hello" bold; B's editor shows it bold.
  await a.page.evaluate(() => {
    const { view } = window;
    const sel = view.state.selection.constructor.create(view.state.doc, 1, 6);
    view.dispatch(view.state.tr.setSelection(sel));
    view.focus();
  });
  await a.page.keyboard.press('Control+b');
  await b.page.waitForFunction(() => document.querySelector('#editor strong')?.textContent === 'Hello', null, { timeout: 10000 });

  // Named cursors: each sees the other's caret labelled with the token's user name.
  await typeAtEnd(a.page, '');
  await b.page.waitForFunction(() => [...document.querySelectorAll('.ProseMirror-yjs-cursor')].some((c) => c.textContent.includes('Alice')), null, { timeout: 10000 });
  await a.page.waitForFunction(() => [...document.querySelectorAll('.ProseMirror-yjs-cursor')].some((c) => c.textContent.includes('Bob')), null, { timeout: 10000 });
  await a.page.screenshot({ path: join(artifacts, 'editor-a.png') });
  await b.page.screenshot({ path: join(artifacts, 'editor-b.png') });

  // Undo undoes only A's own last edit.
  await stopCapturing(a.page);
  await typeAtEnd(a.page, ' UNDO-ME');
  await b.page.waitForFunction(() => window.editorText().includes('UNDO-ME'));
  await stopCapturing(b.page);
  await typeAtEnd(b.page, ' bob-after');
  await a.page.waitForFunction(() => window.editorText().includes('bob-after'));
  await a.page.keyboard.press('Control+z');
  await waitFor(async () => !(await text(b.page)).includes('UNDO-ME'), 'A’s undo at B');
  assert.equal(await text(a.page), 'Hello from Alice. Bob was here. bob-after');
  assert.equal(await text(b.page), 'Hello from Alice. Bob was here. bob-after');

  // In-band refresh: A's tokens live 3 s; the connection outlives several of them on its
  // first socket.
  await waitFor(() => a.page.evaluate(() => window.room.stats.refreshes >= 2), 'two in-band refreshes at A', 20000);
  const aStats = await a.page.evaluate(() => ({ ...window.room.stats, tokens: window.tokensFetched }));
  console.log(`A after refreshes: ${JSON.stringify(aStats)}, sockets seen by Chromium: ${a.sockets.length}`);
  assert.equal(a.sockets.length, 1, 'one WebSocket for the whole session');
  assert.equal(aStats.sockets, 1);
  assert.ok(aStats.tokens >= 3);
  assert.equal(await status(a.page), 'synced');

  // Saved state: typing shows "saving…" until the server acknowledges the commit.
  await a.page.evaluate(() => {
    window.savedLog = [];
    window.room.subscribe('sync-status', (s) => window.savedLog.push(s));
  });
  await typeAtEnd(a.page, ' S');
  await a.page.waitForFunction(() => window.savedLog.at(-1) === 'synchronized');
  // One "saving…/saved" cycle per acknowledged batch of keystrokes (two keys may be one
  // commit or two).
  const savedLog = await a.page.evaluate(() => window.savedLog);
  assert.ok(savedLog.length >= 2 && savedLog.every((s, i) => s === (i % 2 === 0 ? 'synchronizing' : 'synchronized')), `sync log: ${savedLog}`);
  assert.equal(await a.page.textContent('#saved'), 'saved');

  // B goes offline (its proxy drops the socket and refuses reconnects; the page itself
  // still loads), edits, reloads: the edit comes back from IndexedDB.
  b.proxy.cut();
  await waitFor(async () => (await status(b.page)) !== 'synced', 'B to notice', 10000);
  await typeAtEnd(b.page, ' offline words');
  assert.equal(await b.page.textContent('#saved'), 'saving…');
  await waitFor(() => b.page.evaluate(() => window.storedOffline('offline words')), 'the offline edit in IndexedDB', 10000);
  await b.page.reload();
  await b.page.waitForFunction(() => window.editorText?.().includes('offline words'), null, { timeout: 10000 });
  assert.notEqual(await status(b.page), 'synced', 'B is still offline after the reload');
  await typeAtEnd(a.page, ' while B was away');
  await b.page.screenshot({ path: join(artifacts, 'editor-b-offline-after-reload.png') });
  assert.ok(!(await text(a.page)).includes('offline words'));
  b.proxy.restore();
  await waitFor(async () => {
    const [x, y] = [await text(a.page), await text(b.page)];
    return x === y && x.includes('offline words') && x.includes('while B was away');
  }, 'both editors to converge after B is back', 45000);
  await b.page.waitForFunction(() => document.getElementById('saved').textContent === 'saved', null, { timeout: 10000 });
  await a.page.screenshot({ path: join(artifacts, 'editor-a-converged.png') });
  await b.page.screenshot({ path: join(artifacts, 'editor-b-converged.png') });

  // "Saved" means on disk: the moment A shows it, the server is SIGKILLed; a restarted
  // server on the same data directory has the edit.
  await a.page.evaluate(() => {
    window.savedAt = null;
    window.room.subscribe('sync-status', (s) => s === 'synchronized' && (window.savedAt = window.editorText()));
  });
  await typeAtEnd(a.page, ' durable-words');
  await a.page.waitForFunction(() => window.savedAt?.includes('durable-words'), null, { polling: 1, timeout: 10000 });
  await tandem.kill9();
  restarted = await startServer({ dataDir: tandem.dataDir, secret: tandem.secret });
  const response = await fetch(`${restarted.base}/v1/rooms/${encodeURIComponent(room)}/document`, { headers: { authorization: `Bearer ${restarted.secret}` } });
  assert.equal(response.status, 200);
  assert.match(JSON.stringify(await response.json()), /durable-words/);

  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  await a.context.close();
  await b.context.close();
  console.log(`screenshots in ${artifacts}`);
});
