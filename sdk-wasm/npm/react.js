// @tandem/client/react: React bindings over the framework-agnostic API. Every hook reads
// the room from the nearest <RoomProvider> and subscribes through useSyncExternalStore,
// so renders are consistent and unsubscribed on unmount.
import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  useSyncExternalStore,
} from 'react';
import { TandemError } from './index.js';

const RoomContext = createContext(null);

/** Enters room `id` with `client` for as long as it is mounted. */
export function RoomProvider({ client, id, initialPresence, children }) {
  const [room, setRoom] = useState(null);
  const presenceRef = useRef(initialPresence);
  useEffect(() => {
    const entered = client.enterRoom(id, { initialPresence: presenceRef.current });
    setRoom(entered);
    return () => entered.leave();
  }, [client, id]);
  if (!room) return null;
  return createElement(RoomContext.Provider, { value: room }, children);
}

/** The room of the nearest RoomProvider. */
export function useRoom() {
  const room = useContext(RoomContext);
  if (!room) throw new TandemError('useRoom must be used inside a <RoomProvider>', 'no_room');
  return room;
}

/** The connection status; re-renders when it changes. */
export function useStatus() {
  const room = useRoom();
  return useSyncExternalStore(
    useCallback((cb) => room.subscribe('status', cb), [room]),
    () => room.getStatus(),
    () => room.getStatus(),
  );
}

/** The other clients (`[{ clientId, presence, user }]`), optionally through a selector. */
export function useOthers(selector) {
  const room = useRoom();
  const others = useSyncExternalStore(
    useCallback((cb) => room.subscribe('others', cb), [room]),
    () => room.getOthers(),
    () => room.getOthers(),
  );
  return useMemo(() => (selector ? selector(others) : others), [others, selector]);
}

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
  );
  return [presence, useUpdateMyPresence()];
}

/** A stable function that merges a patch into this client's presence. */
export function useUpdateMyPresence() {
  const room = useRoom();
  return useCallback((patch) => room.updatePresence(patch), [room]);
}

/**
 * Reads shared state: `selector(room)` runs again after every document change
 * (`useStorage((room) => room.getList('todos').toArray())`).
 */
export function useStorage(selector) {
  const room = useRoom();
  const version = useRef(0);
  const snapshot = useSyncExternalStore(
    useCallback(
      (cb) =>
        room.subscribe('storage', () => {
          version.current += 1;
          cb();
        }),
      [room],
    ),
    () => version.current,
  );
  // eslint-disable-next-line react-hooks/exhaustive-deps
  return useMemo(() => selector(room), [room, snapshot, selector]);
}

/** A stable callback that changes shared state: `fn({ room, storage, setMyPresence }, ...args)`. */
export function useMutation(fn, deps) {
  const room = useRoom();
  // eslint-disable-next-line react-hooks/exhaustive-deps
  return useCallback(
    (...args) =>
      fn(
        {
          room,
          storage: { getMap: (n) => room.getMap(n), getList: (n) => room.getList(n), getText: (n) => room.getText(n) },
          setMyPresence: (patch) => room.updatePresence(patch),
        },
        ...args,
      ),
    [room, ...(deps ?? [])],
  );
}

/** A stable function that broadcasts a custom event to the room's other clients. */
export function useBroadcastEvent() {
  const room = useRoom();
  return useCallback((event) => room.broadcastEvent(event), [room]);
}

/** Calls `callback({ event, connectionId, userId })` for every custom event received. */
export function useEventListener(callback) {
  const room = useRoom();
  const ref = useRef(callback);
  useEffect(() => {
    ref.current = callback;
  });
  useEffect(() => room.subscribe('event', (e) => ref.current(e)), [room]);
}
