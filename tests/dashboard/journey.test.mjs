// The dashboard as a new user meets it, in headless Chromium against the real binary:
// sign up, copy the key, mint a token with it, connect a stock y-websocket client, see
// the room and its presence appear live in the inspector, edit and see the tree change
// without a reload, roll and revoke the key (the client is closed), see usage charts
// with data, and visit every page (screenshots in $CARGO_TARGET_DIR/dashboard-artifacts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import WebSocket from 'ws';
import { startServer, launch, shot, waitFor } from './harness.mjs';

let server;
let browser;
const providers = [];
const docs = [];

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  for (const p of providers) p.destroy();
  // A document's awareness keeps a timer until the document is destroyed.
  for (const d of docs) d.destroy();
  await browser?.close();
  server?.stop();
});

async function mint(key, userId, name, room) {
  const response = await fetch(`${server.base}/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ userId, userInfo: { name }, permissions: { [room]: ['room:write', 'room:presence:write'] } }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).token;
}

test('a new user signs up, connects a client and watches it live', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));

  // The front door: / goes to the dashboard, which asks to sign in.
  await page.goto(`${server.base}/`);
  assert.match(page.url(), /\/dashboard\/login$/);
  await shot(page, '01-login');

  // Sign up.
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.waitForURL(/\/dashboard\/signup$/);
  await page.fill('#email', 'ada@example.com');
  await page.fill('#password', 'short');
  await page.fill('#tenant', 'Analytical Engines');
  // The browser's own check stops a short password; the server's is the one that counts.
  await page.$eval('form', (f) => f.setAttribute('novalidate', ''));
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForSelector('.alert.error');
  assert.match(await page.textContent('.alert.error'), /password/i);
  await shot(page, '02-signup-error');
  await page.fill('#password', 'correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForSelector('h1:has-text("Get started with development")');
  const nav = await page.textContent('.sidebar');
  assert.match(nav, /development/);
  assert.match(nav, /production/);
  await shot(page, '03-get-started');

  // Copy the key with the button.
  await page.click('button[data-copy="#secret-key"]');
  await waitFor(async () => (await page.getAttribute('button[data-copy="#secret-key"]', 'data-copied')) === 'true', 'the copy button');
  const key = await page.evaluate(() => navigator.clipboard.readText());
  assert.match(key, /^sk_/);
  assert.equal(key, (await page.textContent('#secret-key')).trim());
  const curl = await page.textContent('#curl');
  assert.ok(curl.includes(`${server.base}/v1/tokens`) && curl.includes(key), curl);
  assert.ok((await page.textContent('#snippet')).includes(`${server.wsBase}/v1/connect`));

  // Mint a token with it (from Node, as a backend would) and connect a stock client.
  const room = 'doc-1';
  const token = await mint(key, 'ada', 'Ada Lovelace', room);
  const doc = new Y.Doc();
  docs.push(doc);
  const provider = new WebsocketProvider(`${server.wsBase}/v1/connect`, room, doc, {
    WebSocketPolyfill: WebSocket,
    params: { token },
    // Two providers of one room in one process would share presence over a
    // BroadcastChannel (as two tabs do) and each send the other's state as its own.
    disableBc: true,
  });
  providers.push(provider);
  const closes = [];
  provider.on('connection-close', (event) => closes.push(event?.code));
  provider.awareness.setLocalStateField('user', { name: 'Ada Lovelace', color: '#f97316' });
  provider.awareness.setLocalStateField('cursor', { anchor: 3 });
  await waitFor(() => provider.synced, 'the client to sync');
  doc.getMap('settings').set('title', 'First draft');
  doc.getText('body').insert(0, 'Once upon a time');
  doc.getArray('items').push(['alpha', 'beta']);

  // The room appears in the list.
  await page.locator('.nav a.sub', { hasText: 'Rooms' }).first().click();
  await page.waitForSelector(`tr[data-room="${room}"]`);
  assert.match(await page.textContent(`tr[data-room="${room}"]`), /1 live/);
  await shot(page, '04-rooms');
  // The search finds it by prefix, and a miss shows an empty state.
  await page.fill('#q', 'nothing-like-this');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForSelector('text=No room starts with');
  await page.fill('#q', 'doc');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForSelector(`tr[data-room="${room}"]`);

  // The inspector: document tree and presence, live.
  await page.click(`tr[data-room="${room}"] a`);
  await page.waitForSelector('[data-live-status].on');
  await page.waitForSelector('[data-slot=people] [data-person]:has-text("Ada Lovelace")');
  await page.waitForSelector('[data-slot=tree] :text("First draft")');
  const tree = await page.textContent('[data-slot=tree]');
  for (const part of ['settings', 'map', 'body', 'text', 'items', 'array', 'alpha']) assert.ok(tree.includes(part), `${part} in ${tree}`);
  await shot(page, '05-inspector');
  await page.evaluate(() => { window.__sameDocument = true; });

  // Edits and presence changes arrive without a reload.
  doc.getMap('settings').set('title', 'Edited live');
  provider.awareness.setLocalStateField('cursor', { anchor: 42 });
  await page.waitForSelector('[data-slot=tree] :text("Edited live")');
  await waitFor(async () => (await page.textContent('[data-slot=people]')).includes('42'), 'the presence change');
  // A second client shows up too.
  const token2 = await mint(key, 'grace', 'Grace Hopper', room);
  const doc2 = new Y.Doc();
  docs.push(doc2);
  const provider2 = new WebsocketProvider(`${server.wsBase}/v1/connect`, room, doc2, { WebSocketPolyfill: WebSocket, params: { token: token2 }, disableBc: true });
  providers.push(provider2);
  provider2.awareness.setLocalStateField('user', { name: 'Grace Hopper', color: '#10b981' });
  await page.waitForSelector('[data-slot=people] [data-person]:has-text("Grace Hopper")');
  await waitFor(async () => (await page.textContent('[data-slot=connections]')).trim() === '2', 'two connections');
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was not reloaded');
  await shot(page, '06-inspector-live');
  provider2.destroy();
  await page.waitForSelector('[data-slot=people] [data-person]:has-text("Grace Hopper")', { state: 'detached' });

  // Broadcast an event.
  await page.getByRole('button', { name: 'Send event' }).click();
  await page.waitForSelector('.alert.ok:has-text("Event sent to 1 connection")');

  // Keys: roll with an overlap (the client stays), then revoke the old key (it closes).
  await page.locator('.nav a.sub', { hasText: 'API keys' }).first().click();
  await page.waitForSelector('h2:has-text("API keys")');
  await shot(page, '07-keys');
  const oldRow = page.locator('tr[data-key]').first();
  const oldId = await oldRow.getAttribute('data-key');
  await oldRow.getByRole('button', { name: 'Roll' }).click();
  await page.waitForSelector('[data-new-key]');
  const rolled = (await page.textContent('[data-new-key]')).trim();
  assert.match(rolled, /^sk_/);
  assert.notEqual(rolled, key);
  assert.match(await page.textContent(`tr[data-key="${oldId}"]`), /expires/);
  await shot(page, '08-key-rolled');
  assert.deepEqual(closes, [], 'rolling with an overlap keeps the client');
  await mint(rolled, 'ada', 'Ada Lovelace', room); // the new key works
  await page.locator(`tr[data-key="${oldId}"]`).getByRole('button', { name: 'Revoke' }).click();
  await page.waitForSelector(`tr[data-key="${oldId}"] .badge.danger:has-text("revoked")`);
  await waitFor(() => closes.includes(4401), 'the client to be closed with 4401');
  provider.destroy();
  await shot(page, '09-key-revoked');

  // Usage charts with data (the server flushes usage every second).
  const usageUrl = `${server.base}${new URL(page.url()).pathname.replace(/\/p\/.*$/, '')}/usage`;
  await waitFor(async () => {
    await page.goto(usageUrl);
    const cells = await page.$$eval('[data-chart=messages] td.num', (tds) => tds.map((td) => td.textContent.trim()));
    return cells.some((c) => c !== '0 / 0');
  }, 'usage with messages', 30000);
  assert.ok((await page.$$('[data-chart=messages] rect')).length > 0, 'the messages chart has bars');
  assert.ok((await page.$$('[data-chart=peak] rect')).length > 0, 'the peak chart has bars');
  assert.match(await page.textContent('[data-chart=peak] .legend'), /plan limit/);
  await shot(page, '10-usage');
  await page.getByRole('link', { name: 'Per day' }).click();
  await page.waitForSelector('[data-chart=messages] rect');
  await shot(page, '11-usage-daily');

  // Audit log, plan, team.
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.waitForSelector('text=key.revoked');
  await shot(page, '12-audit');
  await page.fill('#action', 'key.');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForSelector('text=key.rolled');
  assert.ok(!(await page.textContent('table')).includes('account.created'));
  await page.getByRole('link', { name: /^Plan/ }).click();
  await page.waitForSelector('h1:has-text("Plan: free")');
  await shot(page, '13-plan');
  await page.getByRole('link', { name: 'Team' }).click();
  await page.waitForSelector('text=ada@example.com');
  await shot(page, '14-team');

  // Invite a second user, who must accept in their own browser before joining.
  await page.fill('#invite-email', 'grace@example.com');
  await page.selectOption('#invite-role', 'admin');
  await page.getByRole('button', { name: 'Invite' }).click();
  const link = (await page.textContent('[data-invite-link]')).trim();
  assert.match(link, /\/dashboard\/invitations\/accept\?token=/);
  assert.match(await page.textContent('tr[data-invitation="grace@example.com"]'), /pending/);
  assert.equal(await page.locator('tr[data-member="grace@example.com"]').count(), 0, 'not a member before accepting');
  await shot(page, '14b-team-invited');
  const other = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const grace = await other.newPage();
  await grace.goto(`${server.base}/dashboard/signup`);
  await grace.fill('#email', 'grace@example.com');
  await grace.fill('#password', 'compilers all the way down');
  await grace.fill('#tenant', 'Navy Labs');
  await grace.getByRole('button', { name: 'Create account' }).click();
  await grace.waitForSelector('h1:has-text("Get started")');
  await grace.goto(link);
  await grace.waitForSelector('h1:has-text("You are invited")');
  await shot(grace, '14c-accept');
  await grace.getByRole('button', { name: 'Accept the invitation' }).click();
  await grace.waitForSelector('h1:has-text("Projects")');
  // Grace now switches between her own tenant and the one she joined.
  const options = await grace.$$eval('#tenant-select option', (os) => os.map((o) => o.textContent));
  assert.deepEqual(options.sort(), ['Analytical Engines', 'Navy Labs']);
  assert.match(await grace.textContent('.crumbs'), /Analytical Engines/);
  await grace.selectOption('#tenant-select', { label: 'Navy Labs' });
  await grace.waitForFunction(() => document.querySelector('.crumbs')?.textContent.includes('Navy Labs'));
  await other.close();
  await page.getByRole('link', { name: 'Team' }).click();
  await page.waitForSelector('tr[data-member="grace@example.com"]');
  assert.match(await page.textContent('tr[data-member="grace@example.com"]'), /admin/);
  assert.match(await page.textContent('tr[data-invitation="grace@example.com"]'), /accepted/);

  // Personal access tokens: created with an expiry, shown once, working, then revoked.
  await page.getByRole('link', { name: 'Access tokens' }).click();
  await page.waitForSelector('text=No tokens');
  await page.fill('#token-name', 'ci');
  await page.selectOption('#token-expiry', '30');
  await page.getByRole('button', { name: 'Create token' }).click();
  const pat = (await page.textContent('[data-new-token]')).trim();
  assert.match(pat, /^pat_/);
  const me = (t) => fetch(`${server.base}/v1/auth/me`, { headers: { authorization: `Bearer ${t}` } });
  assert.equal((await me(pat)).status, 200);
  await shot(page, '15-tokens');
  await page.locator('tr[data-token]').getByRole('button', { name: 'Revoke' }).click();
  await page.waitForSelector('tr[data-token] .badge.danger:has-text("revoked")');
  assert.equal((await me(pat)).status, 401);

  // Projects: create, rename, switch public access, delete with a typed confirmation.
  await page.getByRole('link', { name: 'Projects', exact: true }).click();
  await shot(page, '16-projects');
  await page.fill('#project-name', 'staging');
  await page.getByRole('button', { name: 'Create project' }).click();
  await page.waitForSelector('h1:has-text("staging")');
  await page.fill('#rename', 'staging-eu');
  await page.getByRole('button', { name: 'Rename' }).click();
  await page.waitForSelector('h1:has-text("staging-eu")');
  await page.getByRole('button', { name: 'Turn public access on' }).click();
  await page.waitForSelector('button:has-text("Turn public access off")');
  await shot(page, '17-project-settings');
  const del = page.getByRole('button', { name: 'Delete this project' });
  assert.equal(await del.isDisabled(), true, 'delete waits for the typed name');
  await page.fill('#confirm', 'staging-eu');
  await del.click();
  await page.waitForSelector('h1:has-text("Projects")');
  assert.ok(!(await page.textContent('.cards')).includes('staging-eu'));

  // A phone-width look at the inspector's list.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator('.nav a.sub', { hasText: 'Rooms' }).first().click();
  await page.waitForSelector(`tr[data-room="${room}"]`);
  await shot(page, '18-phone-rooms');
  await page.setViewportSize({ width: 1280, height: 860 });

  // Sign out; the dashboard asks to sign in again; a wrong password shows the detail.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForSelector('text=You are signed out.');
  await page.goto(`${server.base}/dashboard`);
  assert.match(page.url(), /\/dashboard\/login$/);
  await page.fill('#email', 'ada@example.com');
  await page.fill('#password', 'not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector('.alert.error');
  await shot(page, '19-login-error');
  await page.fill('#password', 'correct horse battery');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector('h1:has-text("Projects")');

  assert.deepEqual(pageErrors, [], 'no script errors');
  await context.close();
});
