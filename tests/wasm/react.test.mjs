// The React entry: a React app (apps/react-app.js, StrictMode, bundled with esbuild) in two
// headless Chromium contexts against the real server, with render counts checked for the
// selector hooks; and in Node, server rendering and `require` of the entries without a
// socket or top-level await.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { clientDir, freshRoom, startServer, waitFor } from './harness.mjs';
import { bundleApp } from './bundle.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.TANDEM_ARTIFACTS ?? resolve(here, '../../target/wasm-artifacts');
const buildDir = join(artifacts, 'react-build');
const people = { alice: { name: 'Alice', color: '#d33' }, bob: { name: 'Bob', color: '#36c' } };

let tandem;
let web;
let browser;
let webBase;

before(async () => {
  mkdirSync(buildDir, { recursive: true });
  tandem = await startServer();
  // React's development build: StrictMode's double effects run only there.
  await bundleApp('react-app.js', buildDir, { jsx: true, production: false });
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
      const files = { '/react.html': [join(here, 'apps', 'react.html'), 'text/html'], '/react-app.bundle.js': [join(buildDir, 'react-app.bundle.js'), 'text/javascript'] };
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
  const context = await browser.newContext({ viewport: { width: 700, height: 300 } });
  const page = await context.newPage();
  const errors = [];
  const sockets = [];
  page.on('pageerror', (e) => errors.push(e));
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto(`${webBase}/react.html?${new URLSearchParams({ server: tandem.base, room, user })}`);
  await page.waitForFunction(() => document.querySelector('[data-testid=sync]')?.textContent.startsWith('synced'), null, { timeout: 20000 });
  return { context, page, errors, sockets };
}

const renders = (page) => page.evaluate(() => ({ ...window.renders }));

test('a React app in StrictMode: one socket, hooks with the right data, selector hooks re-render only on change', async () => {
  const room = freshRoom('react');
  const a = await openAs('alice', room);
  const b = await openAs('bob', room);
  assert.equal(a.sockets.length, 1, `StrictMode's double effects opened ${a.sockets.length} sockets`);

  // The Suspense entry rendered once the room was synced (its fallback before).
  await a.page.waitForFunction(() => document.querySelector('[data-testid=suspense]')?.textContent === 'synced: untitled');

  // useSelf: the name the server attached; useOthers: the other's name.
  await a.page.waitForFunction(() => document.querySelector('[data-testid=me]').textContent === 'Alice');
  await a.page.waitForFunction(() => document.querySelector('[data-testid=names]').textContent === 'Bob');

  // B moves its pointer 20 times: A's cursors re-render, A's names (selected with shallow) do not.
  const before = await renders(a.page);
  for (let x = 1; x <= 20; x += 1) {
    await b.page.evaluate((x) => window.move({ x }), x);
  }
  await a.page.waitForFunction(() => document.querySelector('[data-testid=cursors]').textContent === '20');
  const moved = await renders(a.page);
  console.log(`A's renders while B moved 20 times: ${JSON.stringify({ before, after: moved })}`);
  assert.equal(moved.names, before.names, 'useOthers(names, shallow) re-rendered for a cursor move');
  assert.equal(moved.me, before.me, 'useSelf re-rendered for someone else’s move');
  assert.equal(moved.todos, before.todos, 'useStorage re-rendered without a document change');
  assert.ok(moved.cursors > before.cursors, 'useOthersMapped did not re-render for a move');
  // Presence is throttled, so 20 moves are fewer renders than moves (StrictMode renders twice).
  assert.ok(moved.cursors - before.cursors <= 2 * 20);

  // useMutation + useStorage: A adds a todo; B's list renders it; sync status goes
  // synchronizing → synchronized at A.
  await a.page.evaluate(() => window.add('from react'));
  await b.page.waitForFunction(() => document.querySelector('[data-testid=todos]').textContent === 'from react');
  await a.page.waitForFunction(() => document.querySelector('[data-testid=sync]').textContent === 'synced synchronized');
  const syncLog = await a.page.evaluate(() => window.syncLog);
  assert.ok(syncLog.includes('synchronizing'), `sync log: ${syncLog}`);
  const bTodos = (await renders(b.page)).todos;
  await b.page.evaluate(() => window.move({ x: 99 }));
  await a.page.waitForFunction(() => document.querySelector('[data-testid=cursors]').textContent === '99');
  assert.equal((await renders(b.page)).todos, bTodos, 'a presence change re-rendered useStorage');

  // useCanUndo / useUndo: B cannot undo A's change; A can, and it goes at B too.
  assert.equal(await b.page.isDisabled('[data-testid=undo]'), true);
  assert.equal(await a.page.isDisabled('[data-testid=undo]'), false);
  await a.page.click('[data-testid=undo]');
  await b.page.waitForFunction(() => document.querySelector('[data-testid=todos]').textContent === '');
  assert.equal(await a.page.isDisabled('[data-testid=undo]'), true);
  await a.page.screenshot({ path: join(artifacts, 'react-a.png') });
  await b.page.screenshot({ path: join(artifacts, 'react-b.png') });

  // Unmounting the provider leaves the room: A disappears from B.
  await a.context.close();
  await b.page.waitForFunction(() => document.querySelector('[data-testid=names]').textContent === '', null, { timeout: 20000 });
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
  assert.equal(b.sockets.length, 1);
  await b.context.close();
});

test('server rendering renders the fallback without opening a socket; require() loads the entries', async () => {
  const ssr = join(clientDir, 'ssr-check.mjs');
  writeFileSync(
    ssr,
    `import { createElement } from 'react';
import { renderToString } from 'react-dom/server';
import { createClient } from '@tandem/client';
import { RoomProvider, ClientSideSuspense } from '@tandem/client/react';
let opened = 0;
class NoSocket { constructor() { opened += 1; throw new Error('no sockets on the server'); } }
const client = createClient({ baseUrl: 'http://127.0.0.1:9', WebSocket: NoSocket });
const html = renderToString(createElement(RoomProvider, { client, id: 'ssr', fallback: 'loading…' },
  createElement(ClientSideSuspense, { fallback: 'wait' }, 'never on the server')));
console.log(JSON.stringify({ html, opened, rooms: client.getRooms().length }));
`,
  );
  const out = JSON.parse(execFileSync(process.execPath, [ssr], { cwd: clientDir, encoding: 'utf8' }));
  assert.deepEqual(out, { html: 'loading…', opened: 0, rooms: 0 });

  // No top-level await anywhere: CommonJS code (Jest without ESM) can require() them on
  // a Node with require(esm), and ESM importers never wait on a load.
  const req = createRequire(join(clientDir, 'package.json'));
  const entries = ['@tandem/client', '@tandem/client/react'];
  for (const entry of entries) {
    const file = req.resolve(entry);
    const source = await readFile(file, 'utf8');
    assert.doesNotMatch(source, /^\s*await\b/m, `${entry} has a top-level await`);
    const loaded = await import(pathToFileURL(file).href);
    assert.ok(Object.keys(loaded).length > 5);
  }
});
