// A React app on @tandem/client/react, bundled with esbuild by react.test.mjs. Every
// component counts its renders in window.renders so the test can check that selector
// hooks re-render only when what they selected changed. Rendered in StrictMode (double
// effects) to check that one room means one socket.
import { StrictMode, useEffect } from 'react';
import { createRoot } from 'react-dom/client';
import { createClient } from '@tandem/client';
import {
  RoomProvider, shallow, useOthers, useOthersMapped, useSelf, useStorage, useSyncStatus, useMutation,
  useUndo, useCanUndo, useUpdateMyPresence, useStatus, useRoom, useSyncedRoom, ClientSideSuspense,
  useLostConnectionListener, useErrorListener,
} from '@tandem/client/react';

const params = new URLSearchParams(location.search);
const user = params.get('user');
window.renders = { names: 0, cursors: 0, me: 0, todos: 0, sync: 0 };
const count = (name) => {
  window.renders[name] += 1;
};

const client = createClient({
  baseUrl: params.get('server'),
  getToken: async (room) => {
    const response = await fetch(`/auth?user=${user}`, { method: 'POST', body: JSON.stringify({ room }) });
    return (await response.json()).token;
  },
});
window.client = client;

const names = (others) => others.map((o) => o.user?.name ?? '?');
const cursorX = (o) => o.presence.x ?? null;

function Names() {
  count('names');
  const list = useOthers(names, shallow);
  return <p data-testid="names">{list.join(', ')}</p>;
}

function Cursors() {
  count('cursors');
  const xs = useOthersMapped(cursorX);
  return <p data-testid="cursors">{xs.map(([id, x]) => `${x}`).join(', ')}</p>;
}

function Me() {
  count('me');
  const name = useSelf((self) => self.user?.name);
  return <p data-testid="me">{name ?? ''}</p>;
}

function Sync() {
  count('sync');
  const sync = useSyncStatus();
  const status = useStatus();
  useEffect(() => {
    (window.syncLog ??= []).push(sync);
  }, [sync]);
  return <p data-testid="sync">{status} {sync}</p>;
}

const todoTexts = (room) => room.getList('todos').toArray().map((t) => t.text);

function Todos() {
  count('todos');
  const todos = useStorage(todoTexts, shallow);
  const add = useMutation(({ storage }, text) => storage.getList('todos').push({ text }), []);
  const undo = useUndo();
  const canUndo = useCanUndo();
  const move = useUpdateMyPresence();
  const room = useRoom();
  window.room = room;
  window.add = add;
  window.move = move;
  return (
    <div>
      <ul data-testid="todos">{todos.map((t, i) => <li key={i}>{t}</li>)}</ul>
      <button data-testid="undo" disabled={!canUndo} onClick={undo}>undo</button>
    </div>
  );
}

/** Suspends until the room is synced: renders only with the server's state in. */
function SyncedTitle() {
  const room = useSyncedRoom();
  useLostConnectionListener((status) => (window.lostConnection ??= []).push(status));
  useErrorListener((error) => (window.roomErrors ??= []).push(error.code));
  return <p data-testid="suspense">synced: {room.getMap('meta').get('title') ?? 'untitled'}</p>;
}

function App() {
  return (
    <RoomProvider client={client} id={params.get('room')} initialPresence={{ x: null }} fallback={<p data-testid="loading">loading</p>}>
      <Me />
      <Names />
      <Cursors />
      <Sync />
      <Todos />
      <ClientSideSuspense fallback={<p data-testid="suspense">loading…</p>}>{() => <SyncedTitle />}</ClientSideSuspense>
    </RoomProvider>
  );
}

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
