import type { SkydnsRecord } from '../skydns-model/skydns-record.js';

/** One etcd key and the record its value parsed to (parsed once, when loaded or watched). */
export interface ZoneEntry {
  readonly key: string;
  readonly record: SkydnsRecord;
  /**
   * When the key's lease ends, in ms since the epoch; undefined for a key
   * without a lease. Answers never promise a TTL beyond it (docs/architecture.md §4.5).
   */
  readonly expiresAt?: number;
}

/**
 * What the SkyDNS rules read: an index of valid records by etcd key. Backed
 * by a records file, a fixed set, or etcd (an in-memory index kept current by
 * a watch); the rules never wait on I/O.
 */
export interface ZoneStore {
  /**
   * Every entry whose key starts with `keyPrefix` (etcd's `WithPrefix`), in
   * key order as etcd returns them. The rules pass `key + '/'` for a subtree.
   */
  subtree(keyPrefix: string): readonly ZoneEntry[];
  /** The entry stored under exactly `key`. */
  get(key: string): ZoneEntry | undefined;
  /** How many values are skipped right now because they could not be read as records. */
  readonly malformed: number;
  /**
   * A counter that grows with every change of what the store holds (a put, a
   * delete, a moved lease end, a whole new load), so that an answer made at
   * one version may stand in for a fresh one while the version is unchanged
   * (`srvlink dns`'s wire cache). Undefined for a store that cannot tell:
   * answers from it are never kept.
   */
  readonly version?: number;
  /**
   * Call `listener` after every change of `version`; returns how to stop.
   * Absent: answers are kept only where the version is asked (not in the
   * native UDP path's table, which nobody asks).
   */
  onChange?(listener: () => void): () => void;
}

/** Listeners of a store's changes (`ZoneStore.onChange`), told in the order they came. */
export class ChangeListeners {
  readonly #listeners = new Set<() => void>();

  add(listener: () => void): () => void {
    // A wrapper per call: the same function twice is two listeners.
    const once = (): void => listener();
    this.#listeners.add(once);
    return () => this.#listeners.delete(once);
  }

  /** Tell every listener; one that throws does not keep the others from hearing. */
  tell(): void {
    if (this.#listeners.size === 0) return;
    for (const listener of [...this.#listeners]) {
      try {
        listener();
      } catch {
        // A listener's failure is its own.
      }
    }
  }
}

/**
 * The changes of a store that serves the contents of another (a
 * `MemoryZoneStore` swapped on a reload or a resync): the served contents'
 * changes, and each swap. `follow` starts with the contents served first
 * (without telling) and moves to each new one (telling).
 */
export class FollowedChanges extends ChangeListeners {
  #off: () => void = () => undefined;

  follow(contents: { onChange(listener: () => void): () => void }, swapped = true): void {
    this.#off();
    this.#off = contents.onChange(() => this.tell());
    if (swapped) this.tell();
  }
}
