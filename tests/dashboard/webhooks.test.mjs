// The Webhooks page in headless Chromium against the real binary: add an endpoint (its
// secret shown once), send a test delivery to a local receiver and see the answer,
// watch a real event's delivery appear, disable the endpoint and see the notice
// (screenshots 20-webhooks-*.png).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startServer, launch, shot, waitFor } from './harness.mjs';

let server;
let browser;
let receiver;
const received = [];

before(async () => {
  server = await startServer();
  browser = await launch();
  receiver = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200);
      res.end('ok');
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  receiver?.close();
  await browser?.close();
  server?.stop();
});

test('add a webhook, test it, see deliveries, disable it', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));
  await page.goto(`${server.base}/dashboard/signup`);
  await page.fill('#email', 'hooks@example.com');
  await page.fill('#password', 'correct horse battery');
  await page.fill('#tenant', 'Hooks Inc');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForSelector('h1:has-text("Get started with development")');

  await page.locator('.nav a.sub', { hasText: 'Webhooks' }).first().click();
  await page.waitForSelector('h1:has-text("Webhooks")');
  await page.waitForSelector('text=No webhooks');
  const url = `http://127.0.0.1:${receiver.address().port}/hook`;
  await page.fill('#hook-url', url);
  await page.fill('#hook-events', 'key.*');
  await page.fill('#hook-description', 'audit mirror');
  await page.getByRole('button', { name: 'Add endpoint' }).click();
  await page.waitForSelector('#new-secret');
  assert.match(await page.textContent('#new-secret'), /^whsec_/);
  await shot(page, '20-webhooks-created');

  await page.getByRole('button', { name: 'Send test' }).click();
  await page.waitForSelector('#notice');
  assert.match(await page.textContent('#notice'), /Test delivered: the endpoint answered 200/);
  assert.ok(received.some((r) => r.body.includes('webhook.test') && /^v1,/.test(r.headers['webhook-signature'])));
  assert.equal(await page.locator('#new-secret').count(), 0, 'the secret is not shown again');

  // A key event is delivered for real and listed.
  await page.locator('.nav a.sub', { hasText: 'API keys' }).first().click();
  await page.fill('#key-name', 'ci');
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.waitForSelector('#new-key');
  await waitFor(() => received.some((r) => r.body.includes('key.created')), 'the key.created delivery');
  await page.locator('.nav a.sub', { hasText: 'Webhooks' }).first().click();
  await page.waitForSelector('tr[data-delivery]:has-text("key.created")');
  await waitFor(async () => {
    await page.reload();
    return (await page.textContent('tr[data-delivery]')).includes('delivered');
  }, 'the delivery shown as delivered');
  await shot(page, '21-webhooks-deliveries');

  await page.getByRole('button', { name: 'Disable' }).click();
  await page.waitForSelector('[data-disabled]');
  assert.match(await page.textContent('[data-disabled]'), /Deliveries are paused/);
  await shot(page, '22-webhooks-disabled');
  await page.getByRole('button', { name: 'Enable' }).click();
  await page.waitForSelector('.badge.ok:has-text("enabled")');
  assert.deepEqual(pageErrors, []);
  await context.close();
});
