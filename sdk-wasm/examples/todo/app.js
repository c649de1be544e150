// A collaborative to-do list with live presence, on the framework-agnostic API of
// @tandem/client. Query parameters: `server` (Tandem's base URL), `room`, and `auth`
// (the app's auth endpoint, which answers POST {room} with {token}).
import { createClient } from '@tandem/client';

const params = new URLSearchParams(location.search);
const client = createClient({
  baseUrl: params.get('server') ?? 'http://127.0.0.1:8080',
  authEndpoint: params.get('auth') ?? '/auth',
});

const enteredAt = performance.now();
const room = client.enterRoom(params.get('room') ?? 'todo', { initialPresence: { editing: null } });
const todos = room.getList('todos');
const $ = (id) => document.getElementById(id);

room.subscribe('status', (status) => {
  $('status').textContent = status;
  if (status === 'synced' && window.tandemSyncedMs === undefined) {
    window.tandemSyncedMs = performance.now() - enteredAt; // enterRoom → first synced state
  }
});

function renderPeople(others) {
  $('people').replaceChildren(
    ...others.map((o) => {
      const chip = document.createElement('span');
      chip.textContent = o.user?.name ?? `guest ${o.clientId}`;
      chip.dataset.userId = o.user?.id ?? '';
      chip.style.background = o.user?.color ?? '#888';
      if (o.presence?.editing) chip.textContent += ' ✎';
      return chip;
    }),
  );
}
room.subscribe('others', renderPeople);
renderPeople(room.getOthers());

function renderItems() {
  $('items').replaceChildren(
    ...todos.toArray().map((item, index) => {
      const li = document.createElement('li');
      li.className = item.done ? 'done' : '';
      const box = Object.assign(document.createElement('input'), { type: 'checkbox', checked: item.done });
      box.onchange = () => {
        todos.delete(index);
        todos.insert(index, { ...item, done: box.checked });
      };
      const label = document.createElement('label');
      label.textContent = item.text;
      const remove = Object.assign(document.createElement('button'), { textContent: '×', title: 'Remove' });
      remove.onclick = () => todos.delete(index);
      li.append(box, label, remove);
      return li;
    }),
  );
}
todos.subscribe(renderItems);
renderItems();

$('text').addEventListener('focus', () => room.updatePresence({ editing: true }));
$('text').addEventListener('blur', () => room.updatePresence({ editing: null }));
$('add').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('text').value.trim();
  if (text) todos.push({ text, done: false });
  $('text').value = '';
});

// For tests and devtools.
window.tandemRoom = room;
window.addEventListener('pagehide', () => room.leave());
