// @tandem/node's webhooks against the real server: a real signed delivery verifies with
// verifyWebhook, tampered ones (body, id, timestamp, signature, wrong secret, stale time)
// are refused, both secrets verify during a roll; and the management methods (create,
// list, get, update, rollSecret, deliveries, retryDelivery, test, delete) and the feed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import WebSocket from 'ws';
import { importSdk, startServer, waitFor } from './harness.mjs';

const { Tandem, TandemError, verifyWebhook } = await importSdk();
let server;
let tandem;
let receiver;
const received = [];
let answer = 200;

before(async () => {
  server = await startServer({
    args: ['--webhook-allow-private', '--webhook-allow-http', '--webhook-retry-base', '100ms'],
  });
  tandem = new Tandem({ secretKey: server.secret, baseUrl: server.base });
  receiver = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ body: Buffer.concat(chunks).toString('utf8'), headers: { ...req.headers } });
      res.writeHead(answer);
      res.end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
});

after(() => {
  receiver?.close();
  server?.stop();
});

const url = () => `http://127.0.0.1:${receiver.address().port}/hook`;

async function refused(promise, why) {
  await assert.rejects(promise, (e) => e instanceof TandemError && e.code === 'webhook_verification_failed', why);
}

test('a real delivery verifies; tampered ones do not', async () => {
  const created = await tandem.webhooks.create({ url: url(), events: ['key.*'], description: 'sdk' });
  assert.match(created.secret, /^whsec_/);
  assert.equal(created.enabled, true);
  // A key event is delivered for real.
  const key = await tandem.keys.create({ kind: 'secret', name: 'for the webhook' });
  const delivery = await waitFor(
    () => received.find((r) => r.body.includes(key.id) && r.body.includes('key.created')),
    'the key.created delivery',
  );
  const event = await verifyWebhook(delivery.body, delivery.headers, created.secret);
  assert.equal(event.type, 'key.created');
  assert.equal(event.data.target, key.id);
  assert.equal(event.id, delivery.headers['webhook-id']);
  assert.equal(typeof event.seq, 'number');
  // Bytes and a Headers object work too.
  const asHeaders = new Headers(Object.entries(delivery.headers).filter(([, v]) => typeof v === 'string'));
  assert.equal((await verifyWebhook(new TextEncoder().encode(delivery.body), asHeaders, created.secret)).id, event.id);

  await refused(verifyWebhook(delivery.body.replace('key.created', 'key.revoked'), delivery.headers, created.secret), 'body');
  await refused(verifyWebhook(delivery.body, { ...delivery.headers, 'webhook-id': 'evt_other' }, created.secret), 'id');
  const ts = Number(delivery.headers['webhook-timestamp']);
  await refused(verifyWebhook(delivery.body, { ...delivery.headers, 'webhook-timestamp': String(ts + 1) }, created.secret), 'timestamp');
  await refused(verifyWebhook(delivery.body, { ...delivery.headers, 'webhook-signature': 'v1,AAAA' }, created.secret), 'signature');
  await refused(verifyWebhook(delivery.body, delivery.headers, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'), 'another secret');
  await refused(verifyWebhook(delivery.body, delivery.headers, created.secret, { now: new Date((ts + 3600) * 1000) }), 'stale');
  await refused(verifyWebhook(delivery.body, { 'webhook-id': event.id }, created.secret), 'missing headers');
  // Tolerance is configurable.
  const late = await verifyWebhook(delivery.body, delivery.headers, created.secret, { now: new Date((ts + 3600) * 1000), toleranceSeconds: 7200 });
  assert.equal(late.id, event.id);
  await tandem.webhooks.delete(created.id);
});

test('the Standard Webhooks example verifies', async () => {
  const headers = {
    'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    'webhook-timestamp': '1614265330',
    'webhook-signature': 'v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  };
  const event = await verifyWebhook('{"test": 2432232314}', headers, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', { now: new Date(1614265330 * 1000) });
  assert.deepEqual(event, { test: 2432232314 });
});

test('during a roll both secrets verify, and the management methods work', async () => {
  const created = await tandem.webhooks.create({ url: url(), events: ['room.created'] });
  assert.ok((await tandem.webhooks.list()).some((w) => w.id === created.id));
  assert.equal((await tandem.webhooks.get(created.id)).url, url());
  assert.equal((await tandem.webhooks.get(created.id)).secret, undefined);
  const rolled = await tandem.webhooks.rollSecret(created.id, { overlapSeconds: 600 });
  assert.notEqual(rolled.secret, created.secret);
  assert.ok(rolled.previousSecretExpiresAt);
  const before = received.length;
  const tested = await tandem.webhooks.test(created.id);
  assert.deepEqual([tested.delivered, tested.status], [true, 200]);
  const delivery = received[before];
  assert.equal(delivery.headers['webhook-signature'].split(' ').length, 2);
  for (const secret of [created.secret, rolled.secret]) {
    assert.equal((await verifyWebhook(delivery.body, delivery.headers, secret)).type, 'webhook.test');
  }
  // A receiver holding both secrets (while it rolls its own config) accepts too.
  await verifyWebhook(delivery.body, delivery.headers, ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', rolled.secret]);

  // Deliveries of a failing endpoint, retried by hand once it answers again.
  answer = 503;
  const room = `sdk-hooks-${process.pid}`;
  const token = await tandem.authorize({ userId: 'ada', permissions: { [room]: ['room:write'] } });
  const socket = new WebSocket(`${server.base.replace('http', 'ws')}/v1/connect/${room}?token=${token.token}`);
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve);
    socket.addEventListener('error', reject);
  });
  socket.close();
  const failing = await waitFor(async () => {
    for await (const d of tandem.webhooks.deliveries(created.id)) if (d.eventType === 'room.created' && d.attempts >= 1) return d;
    return undefined;
  }, 'a failed attempt');
  assert.equal(failing.status, 'pending');
  assert.equal(failing.responseStatus, 503);
  answer = 200;
  const retried = await tandem.webhooks.retryDelivery(created.id, failing.id);
  assert.equal(retried.id, failing.id);
  await waitFor(async () => {
    for await (const d of tandem.webhooks.deliveries(created.id)) if (d.id === failing.id) return d.status === 'delivered';
    return false;
  }, 'the retried delivery');

  const updated = await tandem.webhooks.update(created.id, { enabled: false, description: 'paused' });
  assert.deepEqual([updated.enabled, updated.description], [false, 'paused']);
  // The feed has the events, resumable by seq.
  const page = await tandem.events.list({ after: 0 });
  const created_ = page.data.find((e) => e.type === 'room.created' && e.data.room === room);
  assert.ok(created_);
  const rest = await tandem.events.list({ after: created_.seq, limit: 1 });
  assert.ok(rest.data.every((e) => e.seq === created_.seq + 1));
  await tandem.webhooks.delete(created.id);
  await assert.rejects(tandem.webhooks.get(created.id), (e) => e instanceof TandemError && e.status === 404);
  // An internal address is refused by a server without the flag: typed error.
  await assert.rejects(tandem.webhooks.create({ url: 'ftp://x', events: ['*'] }), (e) => e instanceof TandemError && e.status === 400);
});
