import type { SrvlinkError } from '../core/errors.js';
import { parseSkydnsRecord } from '../skydns-model/skydns-record.js';
import { ChangeListeners, type ZoneEntry, type ZoneStore } from './zone-store.js';

/** A malformed value: its key and why it was skipped. */
export interface MalformedValue {
  key: string;
  error: SrvlinkError;
}

/**
 * An in-memory `ZoneStore`: records parsed once when put, kept sorted by key
 * so a subtree is a binary search plus a scan (etcd's range order). A value
 * that is not a valid record is skipped and counted, never fatal
 * (docs/architecture.md §4.5); putting a good value or deleting the key uncounts it, so
 * `malformed` tells what is broken now.
 *
 * Shared by the records file store, the embedded demo set, tests, and an
 * index kept current by an etcd watch (`put` / `delete` per event).
 */
export class MemoryZoneStore implements ZoneStore {
  readonly #entries = new Map<string, ZoneEntry>();
  readonly #malformed = new Map<string, SrvlinkError>();
  /** Keys of `#entries`, sorted. */
  #keys: string[] = [];
  #version = 0;
  readonly #changes = new ChangeListeners();

  /**
   * A store holding `values` (key → JSON text as etcd holds it, or an already
   * decoded object). Malformed values are counted; `malformedValues()` says which.
   */
  static fromValues(values: Iterable<readonly [string, unknown]> | Readonly<Record<string, unknown>>): MemoryZoneStore {
    const store = new MemoryZoneStore();
    const pairs = Symbol.iterator in values ? (values as Iterable<readonly [string, unknown]>) : Object.entries(values);
    for (const [key, value] of pairs) {
      try {
        store.#entries.set(key, { key, record: parseSkydnsRecord(key, value) });
      } catch (err) {
        store.#malformed.set(key, err as SrvlinkError);
      }
    }
    // Sort once instead of inserting one by one.
    store.#keys = [...store.#entries.keys()].sort(compareKeys);
    return store;
  }

  get malformed(): number {
    return this.#malformed.size;
  }

  /** Changes since the store was made: one per `put`, `reject` and `delete` that found something. */
  get version(): number {
    return this.#version;
  }

  onChange(listener: () => void): () => void {
    return this.#changes.add(listener);
  }

  #changed(): void {
    this.#version++;
    this.#changes.tell();
  }

  /** How many valid records the store holds. */
  get size(): number {
    return this.#entries.size;
  }

  /** The values skipped right now, in key order. */
  malformedValues(): MalformedValue[] {
    return [...this.#malformed.entries()].sort(([a], [b]) => compareKeys(a, b)).map(([key, error]) => ({ key, error }));
  }

  /**
   * Store `value` under `key` (replacing what was there), with the lease end
   * `expiresAt` (ms epoch) if the key has one. Returns the error when the value
   * is malformed: the key then holds nothing and is counted as malformed.
   */
  put(key: string, value: unknown, expiresAt?: number): SrvlinkError | undefined {
    let entry: ZoneEntry;
    try {
      const record = parseSkydnsRecord(key, value);
      entry = expiresAt === undefined ? { key, record } : { key, record, expiresAt };
    } catch (err) {
      this.delete(key);
      this.#malformed.set(key, err as SrvlinkError);
      this.#changed();
      return err as SrvlinkError;
    }
    this.#malformed.delete(key);
    if (!this.#entries.has(key)) this.#keys.splice(lowerBound(this.#keys, key), 0, key);
    this.#entries.set(key, entry);
    this.#changed();
    return undefined;
  }

  /** Count `key` as malformed for `error` found before parsing (bytes that are not text): it then holds nothing. */
  reject(key: string, error: SrvlinkError): void {
    this.delete(key);
    this.#malformed.set(key, error);
    this.#changed();
  }

  /** Forget `key` (an etcd delete or an expired lease). Whether it held a record or a malformed value. */
  delete(key: string): boolean {
    const wasMalformed = this.#malformed.delete(key);
    if (!this.#entries.delete(key)) {
      if (wasMalformed) this.#changed();
      return wasMalformed;
    }
    this.#keys.splice(lowerBound(this.#keys, key), 1);
    this.#changed();
    return true;
  }

  subtree(keyPrefix: string): readonly ZoneEntry[] {
    const found: ZoneEntry[] = [];
    for (let i = lowerBound(this.#keys, keyPrefix); i < this.#keys.length; i++) {
      const key = this.#keys[i] as string;
      if (!key.startsWith(keyPrefix)) break;
      found.push(this.#entries.get(key) as ZoneEntry);
    }
    return found;
  }

  get(key: string): ZoneEntry | undefined {
    return this.#entries.get(key);
  }
}

/** etcd orders keys by their bytes; for the ASCII of DNS-derived keys that is code-unit order. */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of the first key not below `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((keys[mid] as string) < key) low = mid + 1;
    else high = mid;
  }
  return low;
}
