import type { ReactNode, ReactElement } from 'react';
import type { Client, Json, JsonObject, Other, Room, RoomEvent, SharedList, SharedMap, SharedText, Status, StorageShape } from './index.js';

export interface RoomProviderProps<P extends JsonObject> {
  client: Client;
  id: string;
  initialPresence?: P;
  children?: ReactNode;
}

export function RoomProvider<P extends JsonObject = JsonObject>(props: RoomProviderProps<P>): ReactElement | null;
export function useRoom<P extends JsonObject = JsonObject, S extends StorageShape = StorageShape>(): Room<P, S>;
export function useStatus(): Status;
export function useOthers<P extends JsonObject = JsonObject>(): Other<P>[];
export function useOthers<P extends JsonObject, T>(selector: (others: Other<P>[]) => T): T;
export function useMyPresence<P extends JsonObject = JsonObject>(): [P | null, (patch: Partial<P>) => void];
export function useUpdateMyPresence<P extends JsonObject = JsonObject>(): (patch: Partial<P>) => void;
export function useStorage<T, P extends JsonObject = JsonObject, S extends StorageShape = StorageShape>(
  selector: (room: Room<P, S>) => T,
): T;

export interface MutationContext<P extends JsonObject, S extends StorageShape> {
  room: Room<P, S>;
  storage: {
    getMap<K extends keyof S & string>(name: K): ReturnType<Room<P, S>['getMap']>;
    getList<K extends keyof S & string>(name: K): ReturnType<Room<P, S>['getList']>;
    getText<K extends keyof S & string>(name: K): SharedText;
  };
  setMyPresence(patch: Partial<P>): void;
}

export function useMutation<A extends unknown[], R, P extends JsonObject = JsonObject, S extends StorageShape = StorageShape>(
  fn: (context: MutationContext<P, S>, ...args: A) => R,
  deps?: unknown[],
): (...args: A) => R;
export function useBroadcastEvent<E extends Json = Json>(): (event: E) => void;
export function useEventListener<E extends Json = Json>(callback: (event: RoomEvent<E>) => void): void;

export type { SharedList, SharedMap };
