// The inspector's actions and the account pages, in headless Chromium against the real
// binary with stock y-websocket clients: who is connected (scopes, key, since), which
// key minted the open connections, the read-only switch (a client's write is refused
// and not applied while it still reads and shows presence; an admin token still
// writes), closing one connection (the client sees 4403 and stops), sessions (see them,
// end one, sign out everywhere else), the security log, and usage per room with the
// plan's limits. Screenshots of every page go to $CARGO_TARGET_DIR/dashboard-artifacts.
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
// y-websocket reports a refused write (the server's auth message) with console.warn.
const denied = [];
const warn = console.warn;

before(async () => {
  server = await startServer();
  browser = await launch();
  console.warn = (...args) => {
    const text = args.join(' ');
    if (text.includes('Permission denied')) denied.push(text);
    else warn(...args);
  };
});

after(async () => {
  console.warn = warn;
  for (const p of providers) p.destroy();
  for (const d of docs) d.destroy();
  await browser?.close();
  server?.stop();
});

async function mint(key, userId, name, room, scopes) {
  const response = await fetch(`${server.base}/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ userId, userInfo: { name }, permissions: { [room]: scopes } }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).token;
}

function connect(room, token, name, color) {
  const doc = new Y.Doc();
  docs.push(doc);
  // disableBc: in one Node process the providers of one room would otherwise share
  // their documents and presence over a BroadcastChannel, as two tabs of one browser do,
  // and each would send the other's presence to the server as its own.
  const provider = new WebsocketProvider(`${server.wsBase}/v1/connect`, room, doc, { WebSocketPolyfill: WebSocket, params: { token }, disableBc: true });
  providers.push(provider);
  provider.awareness.setLocalStateField('user', { name, color });
  const closed = [];
  provider.on('closed', (event) => closed.push(event));
  return { doc, provider, closed };
}

async function documentOf(key, room) {
  const response = await fetch(`${server.base}/v1/rooms/${encodeURIComponent(room)}/document`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

async function signIn(context, email, password) {
  const page = await context.newPage();
  await page.goto(`${server.base}/dashboard/login`);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector('h1:has-text("Projects")');
  return page;
}

test('inspector actions, sessions, security log and usage per room', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36' });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));

  // Sign up; the page with the one-time secret is never stored by the browser.
  await page.goto(`${server.base}/dashboard/signup`);
  await page.fill('#email', 'ada@example.com');
  await page.fill('#password', 'correct horse battery');
  await page.fill('#tenant', 'Analytical Engines');
  const [signup] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/dashboard/signup') && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Create account' }).click(),
  ]);
  assert.equal(signup.headers()['cache-control'], 'no-store');
  await page.waitForSelector('h1:has-text("Get started with development")');
  const key = (await page.textContent('#secret-key')).trim();
  // The development project (the first in the sidebar), and its tenant.
  const href = await page.getAttribute('.nav a.sub', 'href');
  const [, tenant, project] = href.match(/\/dashboard\/t\/([^/]+)\/p\/([^/]+)\//);
  const base = `${server.base}/dashboard/t/${tenant}`;

  // Two stock clients: a writer, and a moderator whose token has room:admin.
  const room = 'notes/inspect';
  const writer = connect(room, await mint(key, 'ada', 'Ada Lovelace', room, ['room:write']), 'Ada Lovelace', '#f97316');
  const moderator = connect(room, await mint(key, 'mod', 'Moderator', room, ['room:admin']), 'Moderator', '#10b981');
  await waitFor(() => writer.provider.synced && moderator.provider.synced, 'both clients to sync');
  writer.doc.getText('body').insert(0, 'Hello');
  await waitFor(async () => (await documentOf(key, room)).body === 'Hello', 'the first write');

  // The inspector: who is connected, with their scopes, key and since when.
  await page.goto(`${base}/p/${project}/room?name=${encodeURIComponent(room)}`);
  await page.waitForSelector('[data-live-status].on');
  await page.waitForSelector('[data-slot=people] [data-person]:has-text("Moderator")');
  const ada = page.locator('[data-slot=people] .person', { hasText: 'Ada Lovelace' });
  const scopes = await ada.locator('[data-scopes]').textContent();
  assert.match(scopes, /room:write/);
  assert.doesNotMatch(scopes, /room:admin/);
  assert.match(await page.locator('[data-slot=people] .person', { hasText: 'Moderator' }).locator('[data-scopes]').textContent(), /room:admin/);
  const keyId = (await ada.locator('[data-key-id]').textContent()).trim();
  assert.match(keyId, /^key_/);
  assert.match(await ada.textContent(), /just now|min ago/);
  await shot(page, '20-inspector-connections');

  // The keys page says which key minted the open connections.
  await page.goto(`${base}/p/${project}`);
  await page.waitForSelector(`tr[data-key="${keyId}"]`);
  assert.equal(await page.getAttribute(`tr[data-key="${keyId}"] [data-open-connections]`, 'data-open-connections'), '2');
  assert.match(await page.textContent(`tr[data-key="${keyId}"]`), /2 open connections/);
  await shot(page, '21-keys-open-connections');

  // Read-only: the writer's edit is refused and not applied; it still reads the
  // moderator's edit and its presence still shows; the moderator still writes.
  await page.goto(`${base}/p/${project}/room?name=${encodeURIComponent(room)}`);
  await page.waitForSelector('[data-live-status].on');
  await page.getByRole('button', { name: 'Make read-only' }).click();
  await page.waitForSelector('.alert.ok:has-text("read-only")');
  assert.match(await page.textContent('[data-slot=read-only]'), /read-only/);
  assert.equal((await (await fetch(`${server.base}/v1/rooms/${encodeURIComponent(room)}`, { headers: { authorization: `Bearer ${key}` } })).json()).readOnly, true);
  await page.waitForSelector('[data-live-status].on');
  await shot(page, '22-inspector-read-only');
  writer.doc.getText('body').insert(5, ' (refused)');
  await waitFor(() => denied.length > 0, 'the server to refuse the write');
  assert.match(denied[0], /read-only/);
  assert.equal((await documentOf(key, room)).body, 'Hello', 'the refused write is not applied');
  moderator.doc.getMap('meta').set('state', 'moderated');
  await waitFor(() => writer.doc.getMap('meta').get('state') === 'moderated', 'the read-only client to keep reading');
  writer.provider.awareness.setLocalStateField('cursor', { anchor: 77 });
  await waitFor(async () => (await page.textContent('[data-slot=people]')).includes('77'), 'its presence in the inspector');
  await page.waitForSelector('[data-slot=tree] :text("moderated")');
  assert.equal((await documentOf(key, room)).body, 'Hello');

  // Writable again: the writer's next edit lands (with the one refused before, which
  // the client still holds and the server asks for when the next one depends on it).
  await page.getByRole('button', { name: 'Make writable again' }).click();
  await page.waitForSelector('.alert.ok:has-text("writable again")');
  writer.doc.getText('body').insert(writer.doc.getText('body').length, '!');
  await waitFor(async () => (await documentOf(key, room)).body.endsWith('!'), 'the write after the switch');

  // A switch made elsewhere (REST) shows up live, switch included, without a reload.
  await page.evaluate(() => { window.__samePage = true; });
  const patch = (readOnly) => fetch(`${server.base}/v1/rooms/${encodeURIComponent(room)}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ readOnly }),
  });
  assert.equal((await patch(true)).status, 200);
  await page.waitForSelector('[data-slot=read-only] .badge.warn');
  await page.waitForSelector('[data-read-only-switch]:has-text("Make writable again")');
  assert.equal((await patch(false)).status, 200);
  await page.waitForSelector('[data-read-only-switch]:has-text("Make read-only")');
  assert.equal(await page.evaluate(() => window.__samePage), true, 'no reload');

  // Close one connection: the stock client hears 4403 and stops; the other stays.
  await page.waitForSelector('[data-live-status].on');
  await page.locator('[data-slot=people] .person', { hasText: 'Ada Lovelace' }).getByRole('button', { name: 'Close' }).click();
  await page.waitForSelector('.alert.ok:has-text("was closed")');
  await waitFor(() => writer.closed.length > 0, 'the client to be closed');
  assert.equal(writer.closed[0].code, 4403);
  assert.match(writer.closed[0].reason, /administrator/);
  assert.equal(writer.provider.shouldConnect, false, 'the stock client does not reconnect');
  await page.waitForSelector('[data-slot=people] [data-person]:has-text("Ada Lovelace")', { state: 'detached' });
  assert.equal(moderator.closed.length, 0);
  await page.waitForSelector('[data-slot=people] [data-person]:has-text("Moderator")');
  await shot(page, '23-inspector-connection-closed');

  // The audit log has both actions.
  await page.goto(`${base}/audit?action=room.`);
  await page.waitForSelector('text=room.connection_closed');
  assert.match(await page.textContent('table'), /room\.read_only/);

  // Sessions: a second and a third browser sign in as Ada; she sees them and ends them.
  const laptop = await browser.newContext({ viewport: { width: 1280, height: 860 }, userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15' });
  const laptopPage = await signIn(laptop, 'ada@example.com', 'correct horse battery');
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1' });
  const phonePage = await signIn(phone, 'ada@example.com', 'correct horse battery');
  await page.getByRole('link', { name: 'Sessions' }).click();
  await page.waitForSelector('h1:has-text("Your sessions")');
  assert.equal(await page.locator('tr[data-session]').count(), 3);
  assert.match(await page.textContent('tr[data-current]'), /Chrome on Linux/);
  assert.match(await page.textContent('tbody'), /Safari on macOS/);
  assert.match(await page.textContent('tbody'), /Safari on iOS/);
  await shot(page, '24-sessions');
  await page.locator('tr[data-session]', { hasText: 'Safari on macOS' }).getByRole('button', { name: 'End' }).click();
  await page.waitForSelector('.alert.ok:has-text("1 session was ended")');
  assert.equal(await page.locator('tr[data-session]').count(), 2);
  await laptopPage.reload();
  assert.match(laptopPage.url(), /\/dashboard\/login$/, 'the ended session is signed out');
  await page.getByRole('button', { name: 'Sign out everywhere else' }).click();
  await page.waitForSelector('.alert.ok:has-text("1 session was ended")');
  assert.equal(await page.locator('tr[data-session]').count(), 1);
  await page.waitForSelector('text=This is your only session.');
  await phonePage.reload();
  assert.match(phonePage.url(), /\/dashboard\/login$/);
  await shot(page, '25-sessions-only-this-one');
  await laptop.close();
  await phone.close();

  // The security log: the sign-ins and the ended sessions, only Ada's.
  await page.getByRole('link', { name: 'Security log' }).click();
  await page.waitForSelector('h1:has-text("Your security log")');
  await page.waitForSelector('tr[data-event="session.ended"]');
  await page.waitForSelector('tr[data-event="session.ended_others"]');
  assert.ok((await page.locator('tr[data-event="login.succeeded"]').count()) >= 2);
  await shot(page, '26-security-log');
  // The same log over REST.
  const cookies = await context.cookies();
  const cookie = cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const sessions = await (await fetch(`${server.base}/v1/me/sessions`, { headers: { cookie } })).json();
  assert.equal(sessions.data.length, 1);
  assert.equal(sessions.data[0].current, true);

  // Usage of this one room, with the plan's per-room limits named on its charts.
  const usageUrl = `${base}/usage?project=${project}&room=${encodeURIComponent(room)}`;
  await waitFor(async () => {
    await page.goto(usageUrl);
    const cells = await page.$$eval('[data-chart=messages] td.num', (tds) => tds.map((td) => td.textContent.trim()));
    return cells.some((c) => c !== '0 / 0');
  }, 'usage of the room', 30000);
  assert.match(await page.textContent('.page-head'), /room notes\/inspect/);
  assert.match(await page.textContent('[data-chart=peak] .legend'), /plan limit/);
  assert.match(await page.textContent('[data-chart=storage] .legend'), /plan limit/);
  assert.equal(await page.locator('[data-chart=mau]').count(), 0, 'active users are per project');
  assert.equal(await page.inputValue('#usage-room'), room);
  await shot(page, '27-usage-room');

  // Phone width: the inspector and the sessions page.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/p/${project}/room?name=${encodeURIComponent(room)}`);
  await page.waitForSelector('[data-slot=people] [data-person]:has-text("Moderator")');
  await shot(page, '28-phone-inspector');
  await page.goto(`${base}/account/sessions`);
  await shot(page, '29-phone-sessions');
  await page.setViewportSize({ width: 1280, height: 860 });

  assert.deepEqual(pageErrors, [], 'no script errors');
  await context.close();
});
