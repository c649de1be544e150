// A typed app on @tandem/client, type-checked with `tsc --noEmit` by types.test.mjs, plus
// expect-type-style assertions and calls that must not compile (`@ts-expect-error`: tsc
// fails if the line does compile).
import { createClient, TandemError, Y, type Other, type Room, type Self, type SyncStatus } from '@tandem/client';
import {
  RoomProvider, shallow, useOthers, useOthersMapped, useSelf, useStorage, useSyncStatus, useMutation, useYDoc,
  useAwareness, useCanUndo, useUndo, useErrorListener, ClientSideSuspense,
} from '@tandem/client/react';
import type { Awareness } from 'y-protocols/awareness';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(_ok?: T): void {}

type Presence = { cursor: { x: number; y: number } | null; name?: string };
type Storage = { todos: { text: string; done: boolean }[]; settings: { theme: string }; notes: string };

const client = createClient({ baseUrl: 'http://127.0.0.1:8080', getToken: async (room) => `token-for-${room}` });
const room = client.enterRoom<Presence, Storage>('doc', { initialPresence: { cursor: null }, presenceThrottleMs: 50 });

expectType<Equal<typeof room.doc, Y.Doc>>();
expectType<Equal<typeof room.awareness, Awareness>>();
expectType<Equal<ReturnType<typeof room.getSyncStatus>, SyncStatus>>();
expectType<Equal<ReturnType<typeof room.getSelf>, Self | null>>();
expectType<Equal<ReturnType<typeof room.getOthers>, readonly Other<Presence>[]>>();
room.updatePresence({ cursor: { x: 1, y: 2 } });
// @ts-expect-error a presence member of the wrong type
room.updatePresence({ cursor: 'top-left' });
room.getList('todos').push({ text: 'a', done: false });
// @ts-expect-error a list item of the wrong shape
room.getList('todos').push({ text: 1 });
const fragment: Y.XmlFragment = room.doc.getXmlFragment('prosemirror');
const saved: boolean = room.hasUnsyncedChanges();
room.subscribe('sync-status', (s) => {
  expectType<Equal<typeof s, SyncStatus>>();
});
room.subscribe('error', (e) => {
  expectType<Equal<typeof e, TandemError>>();
});
room.history.undo();
const manager: Y.UndoManager = room.history.manager;
// @ts-expect-error no such event
room.subscribe('nope', () => {});

function Names() {
  const names = useOthers((others: readonly Other<Presence>[]) => others.map((o) => String(o.user?.name ?? '?')), shallow);
  expectType<Equal<typeof names, string[]>>();
  const xs = useOthersMapped((o: Other<Presence>) => o.presence.cursor?.x ?? null);
  const first: readonly [number, number | null] | undefined = xs[0];
  // @ts-expect-error the mapped value is a number or null, not a string
  const wrong: readonly [number, string] | undefined = xs[0];
  const me = useSelf((self) => self.user?.name);
  const status = useSyncStatus();
  expectType<Equal<typeof status, SyncStatus>>();
  const todos = useStorage((r: Room<Presence, Storage>) => r.getList('todos').toArray(), shallow);
  expectType<Equal<typeof todos, { text: string; done: boolean }[]>>();
  const add = useMutation(({ storage }, text: string) => storage.getList('todos').push({ text, done: false }), []);
  add('x');
  // @ts-expect-error the mutation takes a string
  add(1);
  const doc: Y.Doc = useYDoc();
  const awareness: Awareness = useAwareness();
  const canUndo: boolean = useCanUndo();
  const undo: () => void = useUndo();
  useErrorListener((e) => e.code satisfies string);
  void first;
  void wrong;
  return (
    <p>
      {names.join(', ')} {String(me)} {status} {todos.length} {String(canUndo)} {String(!!doc && !!awareness && !!undo)}
    </p>
  );
}

export function App() {
  return (
    <RoomProvider client={client} id="doc" initialPresence={{ cursor: null }} fallback={<p>loading</p>}>
      <ClientSideSuspense fallback={<p>…</p>}>{() => <Names />}</ClientSideSuspense>
    </RoomProvider>
  );
}

export { fragment, saved, manager };
export type { Equal };
