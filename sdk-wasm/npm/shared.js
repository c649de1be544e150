// Liveblocks-style shared state over the room's Y types: root (or nested) maps, lists
// and texts of JSON values, each a thin wrapper whose `.y` is the Y type itself. Every
// write goes through `room.batch`, so it is one transaction and one undo step.
import * as Y from 'yjs';
import { TandemError, stringify } from './errors.js';

const ROOT_CONFLICT = 'document_busy';

class SharedType {
  /** A root type named `name`, or (with `y`) a type nested inside one. */
  constructor(room, name, y) {
    this.room = room;
    this.name = name;
    this._nested = y;
  }
  _subscribeDeep(type, cb) {
    const handler = () => cb(this);
    type.observeDeep(handler);
    return () => type.unobserveDeep(handler);
  }
  _transact(fn) {
    return this.room.batch(fn);
  }
}

const toJson = (value) => (value instanceof Y.AbstractType ? value.toJSON() : value);

function checkJson(value) {
  stringify(value);
  return value;
}

/** A nested Y.Map filled with `entries` (JSON values). */
function newMap(entries = {}) {
  const map = new Y.Map();
  for (const [key, value] of Object.entries(checkJson(entries))) map.set(key, value);
  return map;
}

/** A nested Y.Array filled with `items` (JSON values). */
function newList(items = []) {
  checkJson(items);
  return Y.Array.from(items);
}

function wrapNested(room, name, value, Kind, YType) {
  if (value === undefined) return undefined;
  if (!(value instanceof YType)) throw new TandemError(`"${name}" is not a nested ${Kind.name}`, 'invalid_argument');
  return new Kind(room, name, value);
}

/** A root Y.Map of JSON values (`.y` is the Y.Map itself). */
export class SharedMap extends SharedType {
  get y() {
    if (this._nested) return this._nested;
    try {
      return this.room.doc.getMap(this.name);
    } catch (cause) {
      throw new TandemError(`root "${this.name}" is not a map`, ROOT_CONFLICT, { cause });
    }
  }
  get(key) {
    return toJson(this.y.get(key));
  }
  set(key, value) {
    checkJson(value);
    this._transact(() => this.y.set(key, value));
  }
  delete(key) {
    this._transact(() => this.y.delete(key));
  }
  has(key) {
    return this.y.has(key);
  }
  /** Sets `key` to a nested map (LiveObject-style) holding `entries`; returns it. */
  setMap(key, entries) {
    const map = newMap(entries);
    this._transact(() => this.y.set(key, map));
    return new SharedMap(this.room, `${this.name}.${key}`, map);
  }
  /** Sets `key` to a nested list holding `items`; returns it. */
  setList(key, items) {
    const list = newList(items);
    this._transact(() => this.y.set(key, list));
    return new SharedList(this.room, `${this.name}.${key}`, list);
  }
  /** The nested map at `key` (undefined if none). */
  getMap(key) {
    return wrapNested(this.room, `${this.name}.${key}`, this.y.get(key), SharedMap, Y.Map);
  }
  /** The nested list at `key` (undefined if none). */
  getList(key) {
    return wrapNested(this.room, `${this.name}.${key}`, this.y.get(key), SharedList, Y.Array);
  }
  toJSON() {
    return this.y.toJSON();
  }
  keys() {
    return [...this.y.keys()];
  }
  subscribe(cb) {
    return this._subscribeDeep(this.y, cb);
  }
}

/** A root Y.Array of JSON values (`.y` is the Y.Array itself). */
export class SharedList extends SharedType {
  get y() {
    if (this._nested) return this._nested;
    try {
      return this.room.doc.getArray(this.name);
    } catch (cause) {
      throw new TandemError(`root "${this.name}" is not a list`, ROOT_CONFLICT, { cause });
    }
  }
  get length() {
    return this.y.length;
  }
  get(index) {
    return toJson(this.y.get(index));
  }
  _check(index, extra = 0) {
    if (!Number.isInteger(index) || index < 0 || index + extra > this.y.length) {
      throw new TandemError(`index ${index} out of range (length ${this.y.length})`, 'out_of_range');
    }
  }
  push(...items) {
    items.forEach(checkJson);
    this._transact(() => this.y.push(items));
  }
  insert(index, ...items) {
    this._check(index);
    items.forEach(checkJson);
    this._transact(() => this.y.insert(index, items));
  }
  /** Appends a nested map (LiveObject-style) holding `entries`; returns it. */
  pushMap(entries) {
    const map = newMap(entries);
    this._transact(() => this.y.push([map]));
    return new SharedMap(this.room, `${this.name}[${this.y.length - 1}]`, map);
  }
  /** Appends a nested list holding `items`; returns it. */
  pushList(items) {
    const list = newList(items);
    this._transact(() => this.y.push([list]));
    return new SharedList(this.room, `${this.name}[${this.y.length - 1}]`, list);
  }
  /** The nested map at `index` (undefined if none). */
  getMap(index) {
    return wrapNested(this.room, `${this.name}[${index}]`, this.y.get(index), SharedMap, Y.Map);
  }
  /** The nested list at `index` (undefined if none). */
  getList(index) {
    return wrapNested(this.room, `${this.name}[${index}]`, this.y.get(index), SharedList, Y.Array);
  }
  /** Replaces the item at `index` (one transaction). */
  set(index, item) {
    this._check(index, 1);
    checkJson(item);
    this._transact(() => {
      this.y.delete(index, 1);
      this.y.insert(index, [item]);
    });
  }
  /** Moves the item at `from` to `to` (one transaction). */
  move(from, to) {
    this._check(from, 1);
    this._check(to, 1);
    if (from === to) return;
    const item = toJson(this.y.get(from));
    this._transact(() => {
      this.y.delete(from, 1);
      this.y.insert(to, [item]);
    });
  }
  delete(index, count = 1) {
    this._check(index, count);
    this._transact(() => this.y.delete(index, count));
  }
  toArray() {
    return this.y.toJSON();
  }
  toJSON() {
    return this.toArray();
  }
  subscribe(cb) {
    return this._subscribeDeep(this.y, cb);
  }
}

/** A root Y.Text (indexes in UTF-16 code units, like JavaScript strings; `.y` is the Y.Text). */
export class SharedText extends SharedType {
  get y() {
    try {
      return this.room.doc.getText(this.name);
    } catch (cause) {
      throw new TandemError(`root "${this.name}" is not a text`, ROOT_CONFLICT, { cause });
    }
  }
  get length() {
    return this.y.length;
  }
  insert(index, chunk, attributes) {
    if (!Number.isInteger(index) || index < 0 || index > this.y.length) {
      throw new TandemError(`index ${index} out of range (length ${this.y.length})`, 'out_of_range');
    }
    this._transact(() => this.y.insert(index, chunk, attributes));
  }
  delete(index, count) {
    this._transact(() => this.y.delete(index, count));
  }
  /** Applies formatting (e.g. `{ bold: true }`) to a range. */
  format(index, length, attributes) {
    this._transact(() => this.y.format(index, length, attributes));
  }
  toString() {
    return this.y.toString();
  }
  toJSON() {
    return this.toString();
  }
  subscribe(cb) {
    const handler = () => cb(this);
    this.y.observe(handler);
    return () => this.y.unobserve(handler);
  }
}
