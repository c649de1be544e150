// The package's framework-agnostic API against the real server, in Node (the `ws`
// package stands in for the browser's WebSocket), plus interop with a stock
// y-websocket client and the React entry's exports.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import { freshRoom, importPackage, startServer, waitFor } from './harness.mjs';

globalThis.WebSocket ??= WebSocket;

let server;
let tandem;
const rooms = [];

before(async () => {
  server = await startServer();
  tandem = await importPackage();
});

after(() => {
  for (const room of rooms) room.leave();
  server?.stop();
});

/** Enters `name` as `user` through a getToken callback. */
function enter(name, user, options = {}) {
  const client = tandem.createClient({
    baseUrl: server.base,
    getToken: (room) => server.mintToken(user, room, { name: user[0].toUpperCase() + user.slice(1) }),
  });
  const room = client.enterRoom(name, options);
  rooms.push(room);
  return room;
}

describe('@tandem/client in Node', () => {
  test('status goes connecting → connected → synced, then disconnected on leave', async () => {
    const name = freshRoom('status');
    const client = tandem.createClient({ baseUrl: server.base, getToken: (r) => server.mintToken('sam', r) });
    const room = client.enterRoom(name);
    const seen = [room.getStatus()];
    const off = room.subscribe('status', (s) => seen.push(s));
    await room.waitUntilSynced();
    room.leave();
    off();
    assert.deepEqual(seen, ['connecting', 'connected', 'synced', 'disconnected']);
  });

  test('map, list and text changes reach a second client, with subscriptions', async () => {
    const name = freshRoom('storage');
    const a = enter(name, 'alice');
    const b = enter(name, 'bob');
    await Promise.all([a.waitUntilSynced(), b.waitUntilSynced()]);
    let mapCalls = 0;
    let storageCalls = 0;
    const offMap = b.getMap('settings').subscribe(() => (mapCalls += 1));
    const offStorage = b.subscribe('storage', () => (storageCalls += 1));

    a.getMap('settings').set('theme', { dark: true, size: 14 });
    a.getList('todos').push({ text: 'write tests', done: false }, { text: 'ship', done: false });
    a.getText('notes').insert(0, 'héllo 👋');
    a.getText('notes').insert(8, '!');

    await waitFor(() => b.getText('notes').toString() === 'héllo 👋!', 'the text at B');
    await waitFor(() => b.getList('todos').length === 2, 'the list at B');
    assert.deepEqual(b.getMap('settings').get('theme'), { dark: true, size: 14 });
    assert.deepEqual(b.getList('todos').toArray().map((t) => t.text), ['write tests', 'ship']);
    await waitFor(() => mapCalls > 0 && storageCalls > 0, 'subscriptions to fire');

    b.getList('todos').delete(0);
    b.getMap('settings').delete('theme');
    await waitFor(() => a.getList('todos').length === 1 && !a.getMap('settings').has('theme'), 'B’s deletes at A');
    offMap();
    offStorage();
    assert.throws(() => a.getList('todos').insert(5, 'x'), (e) => e instanceof tandem.TandemError && e.code === 'out_of_range');
  });

  test('presence and others carry the token’s user info; leaving removes it', async () => {
    const name = freshRoom('presence');
    const a = enter(name, 'alice', { initialPresence: { cursor: null } });
    const b = enter(name, 'bob');
    await waitFor(() => b.getOthers().some((o) => o.user?.id === 'alice'), 'alice in B’s others');
    const alice = b.getOthers().find((o) => o.user?.id === 'alice');
    assert.equal(alice.user.name, 'Alice');
    assert.deepEqual(alice.presence, { cursor: null });
    assert.equal(alice.clientId, a.clientId);

    const updates = [];
    const off = b.subscribe('others', (others) => updates.push(others));
    a.updatePresence({ cursor: { x: 3, y: 4 } });
    await waitFor(() => b.getOthers().find((o) => o.user?.id === 'alice')?.presence.cursor?.x === 3, 'alice’s cursor');
    assert.ok(updates.length > 0);
    assert.deepEqual(a.getPresence(), { cursor: { x: 3, y: 4 } });

    a.leave();
    await waitFor(() => !b.getOthers().some((o) => o.user?.id === 'alice'), 'alice gone from B’s others');
    off();
  });

  test('custom events reach the other clients with the sender', async () => {
    const name = freshRoom('events');
    const a = enter(name, 'alice');
    const b = enter(name, 'bob');
    await Promise.all([a.waitUntilSynced(), b.waitUntilSynced()]);
    const received = [];
    b.subscribe('event', (e) => received.push(e));
    a.broadcastEvent({ type: 'ping', n: 1 });
    await waitFor(() => received.length === 1, 'the event at B');
    assert.deepEqual(received[0].event, { type: 'ping', n: 1 });
    assert.equal(received[0].userId, 'alice');
    assert.equal(typeof received[0].connectionId, 'number');
  });

  test('broadcasting while offline throws TandemError not_connected', async () => {
    const client = tandem.createClient({ baseUrl: 'http://127.0.0.1:9', getToken: () => 'x' });
    const room = client.enterRoom(freshRoom('offline'));
    rooms.push(room);
    assert.throws(() => room.broadcastEvent({ a: 1 }), (e) => e instanceof tandem.TandemError && e instanceof Error && e.code === 'not_connected');
  });

  test('a token for another room is refused with a fatal forbidden error', async () => {
    const name = freshRoom('forbidden');
    const client = tandem.createClient({ baseUrl: server.base, getToken: () => server.mintToken('eve', 'other-room') });
    const room = client.enterRoom(name);
    rooms.push(room);
    const error = await room.waitUntilSynced().then(() => null, (e) => e);
    assert.ok(error instanceof tandem.TandemError, String(error));
    assert.ok(['forbidden', 'unauthorized'].includes(error.code), error.code);
    await waitFor(() => room.getStatus() === 'disconnected', 'disconnected');
  });

  test('a failing getToken is reported as a token error and retried', async () => {
    let calls = 0;
    const client = tandem.createClient({
      baseUrl: server.base,
      getToken: async (room) => {
        calls += 1;
        if (calls === 1) throw new Error('auth service down');
        return server.mintToken('retry', room);
      },
    });
    const room = client.enterRoom(freshRoom('token'));
    rooms.push(room);
    const errors = [];
    room.subscribe('error', (e) => errors.push(e));
    await room.waitUntilSynced();
    assert.equal(errors[0]?.code, 'token');
    assert.equal(calls, 2);
  });

  test('an auth endpoint URL is asked with POST {room}', async () => {
    const name = freshRoom('endpoint');
    const asked = [];
    const fakeFetch = async (url, init) => {
      asked.push([url, JSON.parse(init.body)]);
      return new Response(JSON.stringify({ token: await server.mintToken('ep', name) }), { status: 200 });
    };
    const client = tandem.createClient({ baseUrl: server.base, authEndpoint: '/api/tandem-auth', fetch: fakeFetch });
    const room = client.enterRoom(name);
    rooms.push(room);
    await room.waitUntilSynced();
    assert.deepEqual(asked, [['/api/tandem-auth', { room: name }]]);
  });

  test('the package and a stock y-websocket client edit the same room and converge', async () => {
    const name = freshRoom('interop');
    const a = enter(name, 'alice');
    const ydoc = new Y.Doc();
    const token = await server.mintToken('yjs', name, { name: 'Stock' });
    const provider = new WebsocketProvider(`${server.base.replace('http', 'ws')}/v1/connect`, name, ydoc, {
      params: { token },
      WebSocketPolyfill: WebSocket,
      disableBc: true,
    });
    // As apps do (a cursor, a name): without a state of its own the stock client's
    // awareness stays at clock 0, which y-protocols receivers ignore until its first
    // renewal 15 s later.
    provider.awareness.setLocalStateField('cursor', 0);
    try {
      await a.waitUntilSynced();
      await waitFor(() => provider.synced, 'the stock client to sync');
      a.getList('todos').push({ text: 'from wasm' });
      a.getText('notes').insert(0, 'wasm ');
      ydoc.getArray('todos').push([{ text: 'from yjs' }]);
      ydoc.getText('notes').insert(0, 'yjs ');
      ydoc.getMap('settings').set('by', 'yjs');
      await waitFor(
        () => a.getList('todos').length === 2 && ydoc.getArray('todos').length === 2 && a.getMap('settings').get('by') === 'yjs',
        'both sides to have both items',
      );
      await waitFor(() => a.getText('notes').toString() === ydoc.getText('notes').toString(), 'the texts to converge');
      assert.deepEqual(a.getList('todos').toArray(), ydoc.getArray('todos').toJSON());
      assert.equal(a.getText('notes').length, ydoc.getText('notes').length);
      await waitFor(() => a.getOthers().some((o) => o.user?.id === 'yjs'), 'the stock client in others');
    } finally {
      provider.destroy();
      ydoc.destroy();
    }
  });

  test('the react entry exports every hook', async () => {
    const react = await importPackage('react.js');
    for (const name of [
      'RoomProvider', 'useRoom', 'useOthers', 'useOther', 'useOthersMapped', 'useOthersConnectionIds', 'useSelf',
      'useMyPresence', 'useUpdateMyPresence', 'useStorage', 'useMutation', 'useStatus', 'useSyncStatus',
      'useBroadcastEvent', 'useEventListener', 'useLostConnectionListener', 'useErrorListener', 'useUndo', 'useRedo',
      'useCanUndo', 'useCanRedo', 'useYDoc', 'useAwareness', 'ClientSideSuspense', 'useSyncedRoom', 'shallow',
    ]) {
      assert.equal(typeof react[name], 'function', name);
    }
  });

  test('room.doc is a real Y.Doc and room.awareness a y-protocols Awareness', async () => {
    const name = freshRoom('ydoc');
    const a = enter(name, 'alice');
    const b = enter(name, 'bob');
    await Promise.all([a.waitUntilSynced(), b.waitUntilSynced()]);
    const { Y } = tandem;
    assert.ok(a.doc instanceof Y.Doc);
    // Nested shared types and formatting, written with plain Yjs.
    a.doc.transact(() => {
      const card = new Y.Map();
      card.set('title', 'nested');
      card.set('tags', Y.Array.from(['x', 'y']));
      a.doc.getArray('cards').push([card]);
      const rich = a.doc.getText('rich');
      rich.insert(0, 'bold plain');
      rich.format(0, 4, { bold: true });
    });
    await waitFor(() => b.doc.getArray('cards').length === 1, 'the nested map at B');
    assert.deepEqual(b.doc.getArray('cards').toJSON(), [{ title: 'nested', tags: ['x', 'y'] }]);
    await waitFor(() => b.doc.getText('rich').length === 10, 'the rich text at B');
    assert.deepEqual(b.doc.getText('rich').toDelta(), [{ insert: 'bold', attributes: { bold: true } }, { insert: ' plain' }]);
    // The awareness carries the token's user (what editor cursors read).
    a.awareness.setLocalStateField('cursor', { anchor: 1 });
    await waitFor(() => [...b.awareness.getStates().values()].some((s) => s.user?.name === 'Alice' && s.cursor?.anchor === 1), 'alice’s cursor in B’s awareness');
  });

  test('nested maps and lists (LiveObject-style) sync, and their changes reach root subscribers', async () => {
    const name = freshRoom('nested');
    const a = enter(name, 'alice');
    const b = enter(name, 'bob');
    await Promise.all([a.waitUntilSynced(), b.waitUntilSynced()]);
    let calls = 0;
    b.getList('cards').subscribe(() => (calls += 1));
    const card = a.getList('cards').pushMap({ title: 'first', votes: 0 });
    const tags = card.setList('tags', ['x']);
    await waitFor(() => b.getList('cards').getMap(0)?.getList('tags')?.length === 1, 'the nested card at B');
    tags.push('y');
    card.set('votes', 1);
    await waitFor(() => JSON.stringify(b.getList('cards').toArray()) === JSON.stringify([{ title: 'first', votes: 1, tags: ['x', 'y'] }]), 'nested edits at B');
    assert.ok(calls >= 2, 'deep changes notify the root list');
    assert.throws(() => b.getList('cards').getList(0), (e) => e.code === 'invalid_argument');
    assert.equal(b.getMap('none').getMap('missing'), undefined);
  });

  test('history undoes only local changes; batch is one transaction and one undo step', async () => {
    const name = freshRoom('undo');
    const a = enter(name, 'alice');
    const b = enter(name, 'bob');
    await Promise.all([a.waitUntilSynced(), b.waitUntilSynced()]);
    const list = a.getList('items');
    a.batch(() => {
      list.push('a1');
      list.push('a2');
    });
    await waitFor(() => b.getList('items').length === 2, 'alice’s items at B');
    b.getList('items').push('b1');
    await waitFor(() => list.length === 3, 'bob’s item at A');
    assert.equal(a.history.canUndo(), true);
    a.history.undo();
    assert.deepEqual(list.toArray(), ['b1'], 'undo removed both of alice’s items (one batch) and kept bob’s');
    await waitFor(() => b.getList('items').toArray().join() === 'b1', 'the undo at B');
    a.history.redo();
    await waitFor(() => b.getList('items').length === 3, 'the redo at B');
    list.move(0, 2);
    list.set(0, 'first');
    assert.equal(list.length, 3);
  });

  test('saved: unsynced changes until the server acknowledges them durable', async () => {
    const name = freshRoom('saved');
    const a = enter(name, 'alice');
    await a.waitUntilSynced();
    await a.waitUntilSaved();
    assert.equal(a.hasUnsyncedChanges(), false);
    const statuses = [];
    a.subscribe('sync-status', (s) => statuses.push(s));
    const acks = [];
    a.subscribe('saved', (n) => acks.push(n));
    a.getText('t').insert(0, 'hello');
    assert.equal(a.hasUnsyncedChanges(), true, 'a local edit is unsynced at once');
    assert.equal(a.getSyncStatus(), 'synchronizing');
    await a.waitUntilSaved();
    assert.equal(a.hasUnsyncedChanges(), false);
    assert.deepEqual(statuses, ['synchronizing', 'synchronized']);
    assert.ok(acks.length >= 1);
    // What the acknowledgement promised is on disk: the REST API reads it back.
    const response = await fetch(`${server.base}/v1/rooms/${encodeURIComponent(name)}/document`, { headers: { authorization: `Bearer ${server.secret}` } });
    assert.equal(response.status, 200);
    assert.match(JSON.stringify(await response.json()), /hello/);
  });

  test('the client learns its own identity from the server', async () => {
    const name = freshRoom('self');
    const a = enter(name, 'alice');
    await a.waitUntilSynced();
    const self = a.getSelf();
    assert.equal(self.userId, 'alice');
    assert.deepEqual(self.user, { id: 'alice', name: 'Alice' });
    assert.equal(self.canWrite, true);
    assert.equal(typeof self.connectionId, 'number');
    assert.equal(typeof self.expiresAt, 'number');
  });

  test('a short-lived token is refreshed in band: one socket past several lifetimes', async () => {
    const name = freshRoom('refresh');
    let calls = 0;
    const client = tandem.createClient({
      baseUrl: server.base,
      getToken: (room) => {
        calls += 1;
        return server.mintToken('rita', room, { name: 'Rita' }, undefined, 2);
      },
    });
    const a = client.enterRoom(name);
    rooms.push(a);
    const b = enter(name, 'bob');
    await Promise.all([a.waitUntilSynced(), b.waitUntilSynced()]);
    const statuses = [];
    a.subscribe('status', (s) => statuses.push(s));
    await waitFor(() => a.stats.refreshes >= 3, 'three in-band refreshes', 20000);
    // Every token lived at most 2 s; the connection is older than that several times.
    assert.equal(a.stats.sockets, 1, 'no reconnect');
    assert.deepEqual(statuses, [], 'the status never changed');
    assert.ok(calls >= 4);
    a.getText('t').insert(0, 'still connected');
    await waitFor(() => b.getText('t').toString() === 'still connected', 'an edit after the refreshes at B');
  });

  test('a fresh token for another room is refused in band and reported', async () => {
    const name = freshRoom('refresh-refused');
    let calls = 0;
    const client = tandem.createClient({
      baseUrl: server.base,
      getToken: (room) => {
        calls += 1;
        return calls === 1 ? server.mintToken('rita', room, {}, undefined, 3) : server.mintToken('rita', 'another-room', {}, undefined, 60);
      },
    });
    const a = client.enterRoom(name);
    rooms.push(a);
    const errors = [];
    a.subscribe('error', (e) => errors.push(e));
    await a.waitUntilSynced();
    await waitFor(() => errors.some((e) => e.code === 'refresh_refused'), 'the refusal', 10000);
    const refused = errors.find((e) => e.code === 'refresh_refused');
    assert.equal(refused.closeCode, 4403);
    assert.ok(refused instanceof tandem.TandemError);
  });

  test('presence is throttled: a burst of updates costs a few frames and the last one wins', async () => {
    const name = freshRoom('throttle');
    const a = enter(name, 'alice');
    const b = enter(name, 'bob');
    await Promise.all([a.waitUntilSynced(), b.waitUntilSynced()]);
    const before = a._presenceSent;
    for (let x = 0; x < 200; x += 1) a.updatePresence({ x });
    await waitFor(() => b.getOthers().find((o) => o.user?.id === 'alice')?.presence.x === 199, 'the last position at B');
    const frames = a._presenceSent - before;
    assert.ok(frames <= 3, `${frames} presence frames for 200 updates`);
  });

  test('a stock client gets no Tandem session messages; the package opts in', async () => {
    const name = freshRoom('stock-clean');
    const a = enter(name, 'alice');
    await a.waitUntilSynced();
    const token = await server.mintToken('stock', name);
    const types = [];
    const ws = new WebSocket(`${server.base.replace('http', 'ws')}/v1/connect/${name}?token=${token}`);
    ws.binaryType = 'arraybuffer';
    ws.on('message', (data) => types.push(new Uint8Array(data)[0]));
    await new Promise((resolve) => ws.on('open', resolve));
    // An update of its own (sync step 2 with an empty diff) and one from alice.
    ws.send(new Uint8Array([0, 1, 2, 0, 0]));
    a.getText('t').insert(0, 'x');
    await waitFor(() => types.includes(0) && types.filter((t) => t === 0).length >= 2, 'sync frames at the stock socket');
    await a.waitUntilSaved();
    ws.close();
    assert.ok(!types.includes(101), `type 101 reached a stock client: ${types}`);
  });
});
