'use client';
// @tandem/client/react: React bindings over the framework-agnostic API. Every hook reads
// the room from the nearest <RoomProvider> and subscribes through
// useSyncExternalStoreWithSelector, so renders are consistent, a selector's result is
// compared with `isEqual` (default `Object.is`; `shallow` for arrays and objects) and a
// component re-renders only when what it selected changed. Nothing runs at import time:
// safe to import during server rendering and from Jest/`require`.
import {
  Suspense,
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
} from 'react';
import { useSyncExternalStoreWithSelector } from 'use-sync-external-store/with-selector.js';
import { TandemError } from './index.js';

const RoomContext = createContext(null);

/** Shallow equality of arrays (item by item) and plain objects (member by member). */
export function shallow(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i += 1) if (!Object.is(a[i], b[i])) return false;
    return true;
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => Object.prototype.hasOwnProperty.call(b, k) && Object.is(a[k], b[k]));
}

/**
 * Enters room `id` with `client` for as long as it is mounted. Entering is ref-counted
 * and leaving is deferred by one task, so StrictMode's mount → unmount → mount (and
 * two providers for one room) share one room and one socket. Renders `fallback` (or
 * nothing) until the room exists: on the server, rooms are never entered.
 */
export function RoomProvider({ client, id, initialPresence, fallback = null, children, ...roomOptions }) {
  const [room, setRoom] = useState(null);
  const optionsRef = useRef({ initialPresence, ...roomOptions });
  useEffect(() => {
    const entered = client.enterRoom(id, optionsRef.current);
    setRoom(entered);
    return () => {
      setTimeout(() => entered.leave(), 0);
    };
  }, [client, id]);
  if (!room || room.id !== id) return fallback;
  return createElement(RoomContext.Provider, { value: room }, children);
}

/** The room of the nearest RoomProvider. */
export function useRoom() {
  const room = useContext(RoomContext);
  if (!room) throw new TandemError('useRoom must be used inside a <RoomProvider>', 'no_room');
  return room;
}

const identity = (x) => x;

/** Subscribes to `kind` and selects from `getSnapshot()`. */
function useRoomStore(kind, getSnapshot, selector = identity, isEqual = Object.is) {
  const room = useRoom();
  const subscribe = useCallback((cb) => room.subscribe(kind, cb), [room, kind]);
  const get = useCallback(() => getSnapshot(room), [room, getSnapshot]);
  return useSyncExternalStoreWithSelector(subscribe, get, get, selector, isEqual);
}

const getStatus = (room) => room.getStatus();
const getSyncStatus = (room) => room.getSyncStatus();
const getOthers = (room) => room.getOthers();
const getSelf = (room) => room.getSelf();

/** The connection status; re-renders when it changes. */
export function useStatus() {
  return useRoomStore('status', getStatus);
}

/** `synchronizing` until every local change is on the server's disk, then `synchronized`. */
export function useSyncStatus() {
  const room = useRoom();
  const subscribe = useCallback(
    (cb) => {
      const a = room.subscribe('sync-status', cb);
      const b = room.subscribe('status', cb);
      return () => {
        a();
        b();
      };
    },
    [room],
  );
  return useSyncExternalStore(subscribe, () => room.getSyncStatus(), () => 'synchronizing');
}

/**
 * Who the server says this client is (`{ connectionId, userId, user, canWrite,
 * canPresence, expiresAt }`, plus `presence`), through an optional selector; null
 * before the first connection.
 */
export function useSelf(selector, isEqual) {
  const room = useRoom();
  const subscribe = useCallback(
    (cb) => {
      const a = room.subscribe('self', cb);
      const b = room.subscribe('my-presence', cb);
      return () => {
        a();
        b();
      };
    },
    [room],
  );
  const cache = useRef({ self: undefined, presence: undefined, value: null });
  const get = useCallback(() => {
    const self = room.getSelf();
    const presence = room.getPresence();
    const c = cache.current;
    if (c.self !== self || !shallow(c.presence, presence)) {
      cache.current = { self, presence, value: self ? { ...self, presence } : null };
    }
    return cache.current.value;
  }, [room]);
  return useSyncExternalStoreWithSelector(
    subscribe,
    get,
    get,
    (self) => (self === null ? null : selector ? selector(self) : self),
    isEqual ?? Object.is,
  );
}

/** The other clients (`[{ clientId, presence, user }]`), optionally through a selector. */
export function useOthers(selector, isEqual) {
  return useRoomStore('others', getOthers, selector, isEqual);
}

/** One other client (by client id) through a selector; `null` when it is not there. */
export function useOther(clientId, selector, isEqual) {
  const pick = useCallback(
    (others) => {
      const other = others.find((o) => o.clientId === clientId);
      return other ? selector(other) : null;
    },
    [clientId, selector],
  );
  return useRoomStore('others', getOthers, pick, isEqual);
}

/** `[[clientId, selected], …]` for every other client; re-renders only when a selected value changed. */
export function useOthersMapped(itemSelector, isEqual = Object.is) {
  const pick = useCallback((others) => others.map((o) => [o.clientId, itemSelector(o)]), [itemSelector]);
  const equal = useCallback(
    (a, b) => a.length === b.length && a.every(([id, v], i) => id === b[i][0] && isEqual(v, b[i][1])),
    [isEqual],
  );
  return useRoomStore('others', getOthers, pick, equal);
}

/** The client ids of the others; re-renders only when someone joins or leaves. */
export function useOthersConnectionIds() {
  return useOthers(othersIds, shallow);
}
const othersIds = (others) => others.map((o) => o.clientId);

/** `[presence, updatePresence]` for this client. */
export function useMyPresence() {
  const room = useRoom();
  const cache = useRef({ json: undefined, value: undefined });
  const presence = useSyncExternalStore(
    useCallback((cb) => room.subscribe('my-presence', cb), [room]),
    () => {
      const value = room.getPresence();
      const json = JSON.stringify(value);
      if (json !== cache.current.json) cache.current = { json, value };
      return cache.current.value;
    },
    () => null,
  );
  return [presence, useUpdateMyPresence()];
}

/** A stable function that merges a patch into this client's presence (throttled by the room). */
export function useUpdateMyPresence() {
  const room = useRoom();
  return useCallback((patch) => room.updatePresence(patch), [room]);
}

/**
 * Reads shared state: `selector(room)` runs again after every document change and
 * the component re-renders only when its result changed under `isEqual`
 * (`useStorage((room) => room.getList('todos').toArray(), shallow)`).
 */
export function useStorage(selector, isEqual = Object.is) {
  const room = useRoom();
  const version = useRef(0);
  const subscribe = useCallback(
    (cb) =>
      room.subscribe('storage', () => {
        version.current += 1;
        cb();
      }),
    [room],
  );
  const get = useCallback(() => version.current, []);
  const select = useCallback(() => selector(room), [room, selector]);
  return useSyncExternalStoreWithSelector(subscribe, get, get, select, isEqual);
}

/** A stable callback that changes shared state in one transaction: `fn({ room, storage, setMyPresence }, ...args)`. */
export function useMutation(fn, deps) {
  const room = useRoom();
  // eslint-disable-next-line react-hooks/exhaustive-deps
  return useCallback(
    (...args) =>
      room.batch(() =>
        fn(
          {
            room,
            doc: room.doc,
            storage: { getMap: (n) => room.getMap(n), getList: (n) => room.getList(n), getText: (n) => room.getText(n) },
            setMyPresence: (patch) => room.updatePresence(patch),
          },
          ...args,
        ),
      ),
    [room, ...(deps ?? [])],
  );
}

/** The room's Y.Doc, for editor bindings. */
export function useYDoc() {
  return useRoom().doc;
}

/** The room's y-protocols Awareness, for editor cursors. */
export function useAwareness() {
  return useRoom().awareness;
}

const getCanUndo = (room) => room.history.canUndo();
const getCanRedo = (room) => room.history.canRedo();

/** A stable function undoing this client's last change. */
export function useUndo() {
  const room = useRoom();
  return useCallback(() => room.history.undo(), [room]);
}

/** A stable function redoing this client's last undone change. */
export function useRedo() {
  const room = useRoom();
  return useCallback(() => room.history.redo(), [room]);
}

/** Whether there is a local change to undo. */
export function useCanUndo() {
  return useRoomStore('history', getCanUndo);
}

/** Whether there is an undone change to redo. */
export function useCanRedo() {
  return useRoomStore('history', getCanRedo);
}

/** A stable function that broadcasts a custom event to the room's other clients. */
export function useBroadcastEvent() {
  const room = useRoom();
  return useCallback((event) => room.broadcastEvent(event), [room]);
}

function useRoomListener(kind, callback) {
  const room = useRoom();
  const ref = useRef(callback);
  useEffect(() => {
    ref.current = callback;
  });
  useEffect(() => room.subscribe(kind, (e) => ref.current(e)), [room, kind]);
}

/** Calls `callback({ event, connectionId, userId })` for every custom event received. */
export function useEventListener(callback) {
  useRoomListener('event', callback);
}

/** Calls `callback(status)` when a synced connection is lost. */
export function useLostConnectionListener(callback) {
  useRoomListener('lost-connection', callback);
}

/** Calls `callback(error)` for every TandemError of the room. */
export function useErrorListener(callback) {
  useRoomListener('error', callback);
}

/** Renders `fallback` during server rendering and the first client render, then `children` inside Suspense. */
export function ClientSideSuspense({ fallback = null, children }) {
  const [mounted, setMounted] = useState(false);
  useEffect(() => setMounted(true), []);
  if (!mounted) return fallback;
  return createElement(Suspense, { fallback }, typeof children === 'function' ? createElement(Children, { render: children }) : children);
}

function Children({ render }) {
  return render();
}

/** Suspends (for a Suspense boundary) until the room is synced, then returns it. */
export function useSyncedRoom() {
  const room = useRoom();
  const status = useStatus();
  if (status !== 'synced' && !room._everSynced) {
    throw room.waitUntilSynced().catch(() => {});
  }
  room._everSynced = true;
  return room;
}
