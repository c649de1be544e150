// Every @tandem/node method against the real server, with the package installed from its
// tarball: tokens used by a stock y-websocket client, rooms and documents, pagination over
// 250 rooms, keys, usage, the tenant routes with a PAT, the auth endpoints, typed errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import * as decoding from 'lib0/decoding';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { createPat, freshRoom, importSdk, requireSdk, startServer, waitFor } from './harness.mjs';

const { Tandem, TandemError } = await importSdk();
let server;
let tandem;
const cleanups = [];

before(async () => {
  // A quota no test reaches (the 250-room test alone makes ~260 requests in seconds);
  // ratelimit.test.mjs tests a small one.
  server = await startServer({ plans: '[free]\nrest-requests-per-minute = 100000\n' });
  tandem = new Tandem({ secretKey: server.secret, baseUrl: server.base });
});

after(() => {
  for (const c of cleanups.reverse()) c();
  server?.stop();
});

/** A stock y-websocket client in `room` with `token`; destroyed when the file ends. */
function stockClient(room, token) {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(`${server.base.replace('http', 'ws')}/v1/connect`, room, doc, {
    params: { token },
    WebSocketPolyfill: WebSocket,
    disableBc: true,
  });
  provider.awareness.setLocalStateField('cursor', 0);
  cleanups.push(() => {
    provider.destroy();
    doc.destroy();
  });
  return { doc, provider };
}

test('authorize mints a token a stock y-websocket client syncs with; the REST document follows', async () => {
  const room = freshRoom('sync');
  const minted = await tandem.authorize({
    userId: 'ada',
    userInfo: { name: 'Ada' },
    permissions: { [room]: ['room:write'] },
    expiresIn: 600,
  });
  assert.match(minted.token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const lifetime = Date.parse(minted.expiresAt) - Date.now();
  assert.ok(lifetime > 500_000 && lifetime <= 600_000, `expiresAt ${minted.expiresAt}`);
  assert.match(minted.projectId, /^prj_/);

  const a = stockClient(room, minted.token);
  await waitFor(() => a.provider.synced, 'the stock client to sync');
  a.doc.getText('notes').insert(0, 'hello from yjs');
  a.doc.getMap('settings').set('theme', 'dark');
  await waitFor(async () => (await tandem.rooms.getDocument(room)).notes === 'hello from yjs', 'the edit in the REST document');
  assert.deepEqual((await tandem.rooms.getDocument(room)).settings, { theme: 'dark' });

  // A second stock client with its own token converges through the server.
  const b = stockClient(room, (await tandem.authorize({ userId: 'bob', permissions: { [room]: ['room:read'] } })).token);
  await waitFor(() => b.provider.synced && b.doc.getText('notes').toString() === 'hello from yjs', 'the second client to sync');
});

test('a token outside its permissions is refused by the server', async () => {
  const room = freshRoom('denied');
  const { token } = await tandem.authorize({ userId: 'eve', permissions: { 'other-room': ['room:write'] } });
  const ws = new WebSocket(`${server.base.replace('http', 'ws')}/v1/connect/${room}?token=${token}`);
  const code = await new Promise((resolve) => ws.on('close', (c) => resolve(c)));
  assert.equal(code, 4403);
});

test('history: versions, document at a time, diff, name, restore (live to a client), fork', async () => {
  const room = freshRoom('history');
  const source = new Y.Doc();
  const notes = source.getText('notes');
  notes.insert(0, 'first');
  await tandem.rooms.applyUpdate(room, Y.encodeStateAsUpdate(source));
  const firstAt = new Date();
  await new Promise((resolve) => setTimeout(resolve, 30));
  const before = Y.encodeStateVector(source);
  notes.insert(5, ' second');
  await tandem.rooms.applyUpdate(room, Y.encodeStateAsUpdate(source, before));

  assert.equal((await tandem.rooms.getDocument(room, { at: firstAt })).notes, 'first');
  assert.equal((await tandem.rooms.getDocument(room)).notes, 'first second');
  const old = new Y.Doc();
  Y.applyUpdate(old, await tandem.rooms.getDocumentUpdate(room, { at: firstAt }));
  assert.equal(old.getText('notes').toString(), 'first');

  const page = await tandem.rooms.versions(room);
  assert.equal(page.data.length, 1);
  assert.equal(page.data[0].updates, 2);
  assert.deepEqual(page.data[0].via, ['rest']);
  const diff = await tandem.rooms.diff(room, firstAt);
  assert.equal(diff.changes.length, 1);
  assert.deepEqual(
    { kind: diff.changes[0].kind, index: diff.changes[0].index, after: diff.changes[0].after },
    { kind: 'text', index: 5, after: ' second' },
  );
  const named = await tandem.rooms.nameVersion(room, 'first draft', { at: firstAt });
  assert.equal(named.name, 'first draft');

  // A connected stock client sees the restore live.
  const { token } = await tandem.authorize({ userId: 'ida', permissions: { [room]: ['room:write'] } });
  const c = stockClient(room, token);
  await waitFor(async () => c.doc.getText('notes').toString() === 'first second', 'the client synced');
  const restored = await tandem.rooms.restore(room, firstAt);
  assert.ok(restored.updateBytes > 0);
  await waitFor(async () => c.doc.getText('notes').toString() === 'first', 'the restore reached the client');
  assert.equal((await tandem.rooms.getDocument(room)).notes, 'first');

  const forked = await tandem.rooms.fork(room, page.data[0].id, `${room}-fork`);
  assert.equal(forked.room, `${room}-fork`);
  assert.equal((await tandem.rooms.getDocument(`${room}-fork`)).notes, 'first second');
  await assert.rejects(tandem.rooms.fork(room, firstAt, `${room}-fork`), (e) => e instanceof TandemError && e.status === 409 && e.code === 'room_exists');
  await assert.rejects(
    tandem.rooms.getDocument(room, { at: new Date(Date.now() - 30 * 24 * 3600 * 1000) }),
    (e) => e instanceof TandemError && e.status === 410 && e.code === 'outside_history',
  );
});

test('rooms: applyUpdate, get, document JSON and binary, active users, broadcast, delete', async () => {
  const room = freshRoom('rest');
  const source = new Y.Doc();
  source.getArray('todos').push(['one', 'two']);
  await tandem.rooms.applyUpdate(room, Y.encodeStateAsUpdate(source));
  assert.deepEqual((await tandem.rooms.getDocument(room)).todos, ['one', 'two']);

  const bytes = await tandem.rooms.getDocumentUpdate(room);
  assert.ok(bytes instanceof Uint8Array);
  const copy = new Y.Doc();
  Y.applyUpdate(copy, bytes);
  assert.deepEqual(copy.getArray('todos').toJSON(), ['one', 'two']);
  // With a state vector that already has everything, the answer adds nothing.
  const diff = await tandem.rooms.getDocumentUpdate(room, { stateVector: Y.encodeStateVector(copy) });
  const before = Y.encodeStateVector(copy);
  Y.applyUpdate(copy, diff);
  assert.deepEqual(Y.encodeStateVector(copy), before);
  assert.ok(diff.byteLength < bytes.byteLength);

  assert.equal((await tandem.rooms.get(room)).connections, 0);
  assert.deepEqual(await tandem.rooms.activeUsers(room), []);
  assert.deepEqual(await tandem.rooms.broadcastEvent(room, { nobody: true }), { delivered: 0 });

  // A connected stock client: counted, listed with its token's user, reached by events,
  // and given the updates the SDK applies.
  const { token } = await tandem.authorize({ userId: 'grace', userInfo: { name: 'Grace' }, permissions: { [room]: ['room:write'] } });
  const c = stockClient(room, token);
  const events = [];
  c.provider.on('status', () => {});
  await waitFor(() => c.provider.synced, 'the client to sync');
  c.provider.ws.addEventListener('message', (m) => {
    const decoder = decoding.createDecoder(new Uint8Array(m.data));
    if (decoding.readVarUint(decoder) === 100) events.push(JSON.parse(decoding.readVarString(decoder)));
  });
  assert.deepEqual(c.doc.getArray('todos').toJSON(), ['one', 'two']);
  assert.equal((await tandem.rooms.get(room)).connections, 1);
  const users = await waitFor(async () => {
    const u = await tandem.rooms.activeUsers(room);
    return u.length === 1 && u[0].presence.length > 0 ? u : null;
  }, 'the active user with presence');
  assert.equal(users[0].userId, 'grace');
  assert.deepEqual(users[0].userInfo, { name: 'Grace' });

  const sent = await tandem.rooms.broadcastEvent(room, { kind: 'ping', n: 1 });
  assert.equal(sent.delivered, 1);
  await waitFor(() => events.length === 1, 'the event at the client');
  assert.deepEqual(events[0].event, { kind: 'ping', n: 1 });

  const more = new Y.Doc();
  Y.applyUpdate(more, bytes);
  more.getArray('todos').push(['three']);
  await tandem.rooms.applyUpdate(room, Y.encodeStateAsUpdate(more, Y.encodeStateVector(copy)));
  await waitFor(() => c.doc.getArray('todos').length === 3, 'the REST update at the client');

  const closed = new Promise((resolve) => c.provider.ws.addEventListener('close', (e) => resolve(e.code)));
  await tandem.rooms.delete(room);
  assert.equal(await closed, 4404);
  await assert.rejects(tandem.rooms.get(room), (e) => e instanceof TandemError && e.status === 404);
});

test('list follows the cursor over 250 rooms, in name order, filtered by prefix', async () => {
  const prefix = `page-${process.pid}-`;
  const names = Array.from({ length: 250 }, (_, i) => `${prefix}${String(i).padStart(3, '0')}`);
  const update = (() => {
    const d = new Y.Doc();
    d.getMap('m').set('k', 1);
    return Y.encodeStateAsUpdate(d);
  })();
  // Applying an update is one request per room (connecting would be several round trips).
  for (let i = 0; i < names.length; i += 25) {
    await Promise.all(names.slice(i, i + 25).map((n) => tandem.rooms.applyUpdate(n, update)));
  }
  await tandem.rooms.applyUpdate(`zz-not-${prefix}`, update);

  const seen = [];
  for await (const room of tandem.rooms.list({ prefix })) seen.push(room.name);
  assert.deepEqual(seen, names);

  const pages = [];
  for await (const page of tandem.rooms.list({ prefix, pageSize: 100 }).pages()) pages.push(page.data.length);
  assert.deepEqual(pages, [100, 100, 50]);
  const small = await tandem.rooms.list({ prefix, pageSize: 7 }).toArray();
  assert.deepEqual(small.map((r) => r.name), names);

  const all = await tandem.rooms.list().toArray();
  assert.ok(all.some((r) => r.name === `zz-not-${prefix}`));
  assert.ok(all.length >= 251);
});

test('keys: list, create, roll, revoke; a revoked key is a typed 401', async () => {
  const before = await tandem.keys.list();
  assert.ok(before.some((k) => k.kind === 'secret' && k.active));

  const created = await tandem.keys.create({ kind: 'secret', name: 'ci' });
  assert.match(created.key, /^sk_/);
  assert.equal(created.name, 'ci');
  const second = new Tandem({ secretKey: created.key, baseUrl: server.base });
  assert.ok((await second.keys.list()).some((k) => k.id === created.id));

  const rolled = await tandem.keys.roll(created.id, { gracePeriodSeconds: 0 });
  assert.match(rolled.newKey.key, /^sk_/);
  assert.equal(rolled.oldKey.id, created.id);
  await assert.rejects(second.rooms.list().toArray(), (e) => e instanceof TandemError && e.status === 401);

  const publishable = await tandem.keys.create({ kind: 'publishable' });
  assert.match(publishable.key, /^pk_/);
  const revoked = await tandem.keys.revoke(publishable.id);
  assert.equal(revoked.active, false);
  assert.ok(revoked.revokedAt);

  const third = new Tandem({ secretKey: rolled.newKey.key, baseUrl: server.base });
  await third.keys.revoke(rolled.newKey.id);
  const error = await third.keys.list().then(
    () => assert.fail('a revoked key was accepted'),
    (e) => e,
  );
  assert.ok(error instanceof TandemError);
  assert.ok(error instanceof Error);
  assert.equal(error.status, 401);
  assert.equal(typeof error.code, 'string');
  assert.ok(error.detail.length > 0);

  const listed = await tandem.keys.list();
  assert.equal(listed.find((k) => k.id === publishable.id)?.active, false);
  await assert.rejects(tandem.keys.revoke('key_doesnotexist'), (e) => e instanceof TandemError && e.status === 404);
});

test('typed errors: unknown room 404, bad key 401, invalid update 400, unreachable server', async () => {
  const missing = await tandem.rooms.get('no-such-room-ever').catch((e) => e);
  assert.ok(missing instanceof TandemError);
  assert.equal(missing.status, 404);
  assert.equal(missing.code, 'not_found');
  assert.equal(missing.problem.type, 'urn:tandem:problem:not_found');
  assert.ok(missing.requestId);
  await assert.rejects(tandem.rooms.getDocument('no-such-room-ever'), { name: 'TandemError', status: 404, code: 'not_found' });

  const bad = new Tandem({ secretKey: 'sk_notarealkey', baseUrl: server.base });
  const unauthorized = await bad.rooms.get('x').catch((e) => e);
  assert.ok(unauthorized instanceof TandemError);
  assert.equal(unauthorized.status, 401);
  assert.equal(unauthorized.code, 'unauthenticated');
  await assert.rejects(bad.authorize({ userId: 'u', permissions: { x: ['room:read'] } }), { status: 401 });

  const invalid = await tandem.rooms.applyUpdate(freshRoom('bad'), new Uint8Array([0xff, 0xff, 0xff])).catch((e) => e);
  assert.ok(invalid instanceof TandemError);
  assert.equal(invalid.status, 400);

  const tooLong = await tandem.authorize({ userId: 'u', permissions: { x: ['room:read'] }, expiresIn: 10 ** 9 }).catch((e) => e);
  assert.ok(tooLong instanceof TandemError);
  assert.equal(tooLong.status, 400);

  const nowhere = new Tandem({ secretKey: server.secret, baseUrl: 'http://127.0.0.1:1' });
  await assert.rejects(nowhere.rooms.get('x'), { name: 'TandemError', status: 0, code: 'network' });
  assert.throws(() => new Tandem({ baseUrl: server.base }), { code: 'invalid_argument' });
});

test('usage: the project usage for a range, as a Date or a string', async () => {
  const to = new Date(Date.now() + 3600_000);
  const from = new Date(Date.now() - 86400_000);
  const usage = await tandem.usage({ from, to, granularity: 'hour' });
  assert.match(usage.projectId, /^prj_/);
  assert.equal(usage.granularity, 'hour');
  assert.ok(Array.isArray(usage.buckets));
  assert.ok(Array.isArray(usage.monthlyActiveUsers));
  const daily = await tandem.usage({ from: from.toISOString(), to: to.toISOString(), granularity: 'day' });
  assert.equal(daily.granularity, 'day');
  await assert.rejects(tandem.usage({ from: to, to: from }), { status: 400 });
});

test('tenant routes with a PAT: me, tenant, projects, usage, audit log pages', async () => {
  const { pat, tenantId } = await createPat(server);
  const admin = new Tandem({ pat, baseUrl: server.base });
  const me = await admin.me();
  assert.equal(me.user.email, server.email);
  assert.ok(me.tenants.some((t) => t.id === tenantId));
  const tenant = admin.tenant(tenantId);
  assert.equal((await tenant.get()).id, tenantId);
  const projects = await tenant.projects();
  assert.ok(projects.length >= 1);
  const usage = await tenant.usage({ from: new Date(Date.now() - 86400_000), to: new Date(Date.now() + 3600_000) });
  assert.equal(usage.tenantId, tenantId);

  // The earlier tests created and revoked keys; the log has them, newest first, over pages.
  await tandem.keys.revoke((await tandem.keys.create({ kind: 'publishable', name: 'audit' })).id);
  const entries = [];
  for await (const entry of tenant.auditLog({ pageSize: 2 })) entries.push(entry);
  const actions = entries.map((e) => e.action);
  assert.ok(actions.includes('key.created'), actions.join());
  assert.ok(actions.includes('key.revoked'), actions.join());
  assert.ok(actions.includes('pat.created'), actions.join());
  const ids = entries.map((e) => e.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => b - a));
  assert.equal(new Set(ids).size, ids.length);
  assert.ok(entries.length > 2, 'more than one page');

  // A secret key is not a PAT: the tenant routes refuse it.
  const wrong = new Tandem({ pat: server.secret, baseUrl: server.base });
  await assert.rejects(wrong.tenant(tenantId).get(), { name: 'TandemError', status: 401 });
});

test('authEndpoint: a Node/Express handler answers the client SDK with a token a stock client uses', async () => {
  const room = freshRoom('endpoint');
  const handler = tandem.authEndpoint(async ({ room: asked, request }) => {
    if (request.headers['x-user'] !== 'ada') return null;
    return { userId: 'ada', userInfo: { name: 'Ada' }, permissions: { [asked]: ['room:write'] } };
  });
  const http = createServer((req, res) => handler(req, res));
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  cleanups.push(() => http.close());
  const url = `http://127.0.0.1:${http.address().port}/auth`;
  const post = (body, headers = { 'x-user': 'ada' }) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  const ok = await post(JSON.stringify({ room }));
  assert.equal(ok.status, 200);
  const { token, expiresAt } = await ok.json();
  assert.ok(Date.parse(expiresAt) > Date.now());
  assert.equal((await post(JSON.stringify({ room }), {})).status, 403);
  assert.equal((await post('not json')).status, 400);
  assert.equal((await fetch(url)).status, 405);

  const c = stockClient(room, token);
  await waitFor(() => c.provider.synced, 'the client with the endpoint token to sync');
  c.doc.getText('t').insert(0, 'via endpoint');
  await waitFor(async () => (await tandem.rooms.getDocument(room)).t === 'via endpoint', 'the edit stored');
  const users = await waitFor(async () => {
    const u = await tandem.rooms.activeUsers(room);
    return u.length === 1 ? u : null;
  }, 'the user');
  assert.equal(users[0].userId, 'ada');

  // With express.json() the body is already parsed: the handler uses req.body.
  let answered;
  const res = { statusCode: 0, headers: {}, setHeader(k, v) { this.headers[k] = v; }, end(b) { answered = JSON.parse(b); } };
  await handler({ method: 'POST', body: { room }, headers: { 'x-user': 'ada' }, async *[Symbol.asyncIterator]() {} }, res);
  assert.equal(res.statusCode, 200);
  assert.equal(typeof answered.token, 'string');

  // The default permissions are write on the asked room only.
  let defaulted;
  const defaults = tandem.authEndpoint(() => ({ userId: 'x' }));
  const r2 = { statusCode: 0, setHeader() {}, end(b) { defaulted = JSON.parse(b); } };
  await defaults({ method: 'POST', body: JSON.stringify({ room }), async *[Symbol.asyncIterator]() {} }, r2);
  assert.equal(r2.statusCode, 200);
  const wsUrl = (name) => `${server.base.replace('http', 'ws')}/v1/connect/${name}?token=${defaulted.token}`;
  const other = new WebSocket(wsUrl(`not-${room}`));
  assert.equal(await new Promise((resolve) => other.on('close', (code) => resolve(code))), 4403);
  const own = stockClient(room, defaulted.token);
  await waitFor(() => own.provider.synced && own.doc.getText('t').toString() === 'via endpoint', 'the default-permission client to sync');
});

test('authEndpointFetch: a Fetch-API (Request) => Response handler', async () => {
  const room = freshRoom('fetch');
  const handler = tandem.authEndpointFetch(async ({ room: asked, request }) =>
    request.headers.get('cookie') === 'session=ok' ? { userId: 'lin', permissions: { [asked]: ['room:read'] } } : null,
  );
  const answer = await handler(
    new Request('http://app.local/api/auth', { method: 'POST', headers: { cookie: 'session=ok' }, body: JSON.stringify({ room }) }),
  );
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get('cache-control'), 'no-store');
  const { token } = await answer.json();
  const c = stockClient(room, token);
  await waitFor(() => c.provider.synced, 'the read-only client to sync');
  const refused = await handler(new Request('http://app.local/api/auth', { method: 'POST', body: JSON.stringify({ room }) }));
  assert.equal(refused.status, 403);
  const wrongMethod = await handler(new Request('http://app.local/api/auth'));
  assert.equal(wrongMethod.status, 405);
  // A Tandem refusal (bad secret key) is not passed to the browser as a 401.
  const broken = new Tandem({ secretKey: 'sk_bad', baseUrl: server.base }).authEndpointFetch(() => ({ userId: 'x' }));
  const failed = await broken(new Request('http://app.local/', { method: 'POST', body: JSON.stringify({ room }) }));
  assert.equal(failed.status, 502);
});

test('the CommonJS build works through require()', async () => {
  const cjs = requireSdk();
  assert.equal(typeof cjs.Tandem, 'function');
  assert.equal(cjs.default, cjs.Tandem);
  const client = new cjs.Tandem({ secretKey: server.secret, baseUrl: server.base });
  const room = freshRoom('cjs');
  const { token } = await client.authorize({ userId: 'c', permissions: { [room]: ['room:read'] } });
  assert.equal(typeof token, 'string');
  const e = await client.rooms.get(room).catch((x) => x);
  assert.ok(e instanceof cjs.TandemError);
  assert.equal(e.status, 404);
});

test('the README quickstart runs against the server', async () => {
  // Copied into the temporary project, so `import … from '@tandem/node'` resolves as in an app.
  const here = dirname(fileURLToPath(import.meta.url));
  const example = join(process.env.TANDEM_NODE_PROJECT, 'quickstart.mjs');
  copyFileSync(join(here, '..', '..', 'sdk-node', 'examples', 'quickstart.mjs'), example);
  const demo = new Y.Doc();
  demo.getArray('todos').push(['write the docs']);
  await tandem.rooms.applyUpdate('quickstart-demo', Y.encodeStateAsUpdate(demo));
  const run = spawnSync(process.execPath, [example], {
    cwd: process.env.TANDEM_NODE_PROJECT,
    env: { ...process.env, TANDEM_URL: server.base, TANDEM_SECRET_KEY: server.secret },
    encoding: 'utf8',
    timeout: 30000,
  });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /token for ada expires at/);
  assert.match(run.stdout, /room quickstart-demo: \{"todos":\["write the docs"\]\}/);
});
