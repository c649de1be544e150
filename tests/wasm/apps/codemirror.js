// A CodeMirror 6 editor with y-codemirror.next on @tandem/client (bundled by
// codemirror.test.mjs): the binding gets the room's Y.Text and Awareness unchanged.
import { createClient } from '@tandem/client';
import { EditorState } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { yCollab } from 'y-codemirror.next';

const params = new URLSearchParams(location.search);
const client = createClient({
  baseUrl: params.get('server'),
  getToken: async (room) => {
    const response = await fetch(`/auth?user=${params.get('user')}`, { method: 'POST', body: JSON.stringify({ room }) });
    return (await response.json()).token;
  },
});
const room = client.enterRoom(params.get('room'));
const ytext = room.doc.getText('code');
const view = new EditorView({
  state: EditorState.create({ doc: ytext.toString(), extensions: [yCollab(ytext, room.awareness)] }),
  parent: document.getElementById('editor'),
});
room.subscribe('status', (s) => (document.getElementById('status').textContent = s));
window.room = room;
window.view = view;
window.code = () => view.state.doc.toString();
