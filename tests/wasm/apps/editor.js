// A collaborative ProseMirror editor on @tandem/client, bundled with esbuild by the
// browser tests: y-prosemirror's sync, cursor and undo plugins get the room's Y.Doc and
// Awareness unchanged. Query parameters: server, room, user, ttl (token lifetime in
// seconds), offline=1 (IndexedDB persistence through y-indexeddb).
import { createClient, Y } from '@tandem/client';
import { EditorState } from 'prosemirror-state';
import { EditorView } from 'prosemirror-view';
import { schema } from 'prosemirror-schema-basic';
import { keymap } from 'prosemirror-keymap';
import { baseKeymap, toggleMark } from 'prosemirror-commands';
import { ySyncPlugin, yCursorPlugin, yUndoPlugin, undo, redo } from 'y-prosemirror';
import { IndexeddbPersistence } from 'y-indexeddb';

const params = new URLSearchParams(location.search);
const user = params.get('user');
const $ = (id) => document.getElementById(id);
window.tokensFetched = 0;
const client = createClient({
  baseUrl: params.get('server'),
  getToken: async (room) => {
    window.tokensFetched += 1;
    const response = await fetch(`/auth?user=${user}&ttl=${params.get('ttl') ?? ''}`, { method: 'POST', body: JSON.stringify({ room }) });
    return (await response.json()).token;
  },
});

const enteredAt = performance.now();
const room = client.enterRoom(params.get('room'), {
  persistence: params.get('offline') === '1' ? (doc, name) => new IndexeddbPersistence(`tandem-${name}`, doc) : undefined,
});
window.room = room;

room.subscribe('status', (status) => {
  $('status').textContent = status;
  if (status === 'synced' && window.syncedMs === undefined) window.syncedMs = performance.now() - enteredAt;
});
const showSaved = () => {
  $('saved').textContent = room.getSyncStatus() === 'synchronized' ? 'saved' : 'saving…';
};
room.subscribe('sync-status', showSaved);
showSaved();
room.subscribe('self', (self) => ($('me').textContent = self.user?.name ?? ''));

const view = new EditorView($('editor'), {
  state: EditorState.create({
    schema,
    plugins: [
      ySyncPlugin(room.doc.getXmlFragment('prosemirror')),
      yCursorPlugin(room.awareness),
      yUndoPlugin(),
      keymap({ 'Mod-z': undo, 'Mod-y': redo, 'Mod-Shift-z': redo, 'Mod-b': toggleMark(schema.marks.strong) }),
      keymap(baseKeymap),
    ],
  }),
});
window.view = view;
window.editorText = () => view.state.doc.textContent;

/** Whether IndexedDB (read back through a second, independent doc) holds `text`. */
window.storedOffline = async (text) => {
  const doc = new Y.Doc();
  const copy = new IndexeddbPersistence(`tandem-${room.id}`, doc);
  await copy.whenSynced;
  const found = doc.getXmlFragment('prosemirror').toString().includes(text);
  await copy.destroy();
  doc.destroy();
  return found;
};
