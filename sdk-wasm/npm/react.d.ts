import type { ReactNode, ReactElement } from 'react';
import type { Awareness } from 'y-protocols/awareness';
import type {
  Client, EnterOptions, Json, JsonObject, Other, Room, RoomEvent, Self, SharedList, SharedMap, SharedText,
  Status, StorageShape, SyncStatus, TandemError, Y,
} from './index.js';

export interface RoomProviderProps<P extends JsonObject> extends Omit<EnterOptions<P>, 'initialPresence'> {
  client: Client;
  id: string;
  initialPresence?: P;
  /** Rendered until the room is entered (and during server rendering). */
  fallback?: ReactNode;
  children?: ReactNode;
}

/** Shallow equality of arrays and plain objects, for selector hooks. */
export function shallow(a: unknown, b: unknown): boolean;

export function RoomProvider<P extends JsonObject = JsonObject>(props: RoomProviderProps<P>): ReactElement | null;
export function useRoom<P extends JsonObject = JsonObject, S extends StorageShape = StorageShape>(): Room<P, S>;
export function useStatus(): Status;
export function useSyncStatus(): SyncStatus;

export type SelfWithPresence<P extends JsonObject> = Self & { presence: P | null };
export function useSelf<P extends JsonObject = JsonObject>(): SelfWithPresence<P> | null;
export function useSelf<T, P extends JsonObject = JsonObject>(
  selector: (self: SelfWithPresence<P>) => T,
  isEqual?: (a: T, b: T) => boolean,
): T | null;

export function useOthers<P extends JsonObject = JsonObject>(): readonly Other<P>[];
export function useOthers<T, P extends JsonObject = JsonObject>(
  selector: (others: readonly Other<P>[]) => T,
  isEqual?: (a: T, b: T) => boolean,
): T;
export function useOther<T, P extends JsonObject = JsonObject>(
  clientId: number,
  selector: (other: Other<P>) => T,
  isEqual?: (a: T | null, b: T | null) => boolean,
): T | null;
export function useOthersMapped<T, P extends JsonObject = JsonObject>(
  itemSelector: (other: Other<P>) => T,
  isEqual?: (a: T, b: T) => boolean,
): ReadonlyArray<readonly [clientId: number, value: T]>;
export function useOthersConnectionIds(): readonly number[];

export function useMyPresence<P extends JsonObject = JsonObject>(): [P | null, (patch: Partial<P>) => void];
export function useUpdateMyPresence<P extends JsonObject = JsonObject>(): (patch: Partial<P>) => void;
export function useStorage<T, P extends JsonObject = JsonObject, S extends StorageShape = StorageShape>(
  selector: (room: Room<P, S>) => T,
  isEqual?: (a: T, b: T) => boolean,
): T;

export interface MutationContext<P extends JsonObject, S extends StorageShape> {
  room: Room<P, S>;
  doc: Y.Doc;
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
export function useYDoc(): Y.Doc;
export function useAwareness(): Awareness;
export function useUndo(): () => void;
export function useRedo(): () => void;
export function useCanUndo(): boolean;
export function useCanRedo(): boolean;
export function useBroadcastEvent<E extends Json = Json>(): (event: E) => void;
export function useEventListener<E extends Json = Json>(callback: (event: RoomEvent<E>) => void): void;
export function useLostConnectionListener(callback: (status: Status) => void): void;
export function useErrorListener(callback: (error: TandemError) => void): void;
export function ClientSideSuspense(props: { fallback?: ReactNode; children: ReactNode | (() => ReactNode) }): ReactElement | null;
/** Suspends until the room is synced (inside a Suspense boundary), then returns it. */
export function useSyncedRoom<P extends JsonObject = JsonObject, S extends StorageShape = StorageShape>(): Room<P, S>;

export type { SharedList, SharedMap };
