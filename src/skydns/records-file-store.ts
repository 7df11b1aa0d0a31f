import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { ConfigError, errorMessage } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { MemoryZoneStore } from './memory-zone-store.js';
import { FollowedChanges, type ZoneEntry, type ZoneStore } from './zone-store.js';

export interface RecordsFileStoreOptions {
  /** Where load, reload and skipped values are reported; default: nowhere. */
  logger?: Logger;
  /** How long to wait after the last change in the file's directory before re-reading it, in ms; default 100. */
  debounceMs?: number;
}

/** What a successful reload read. */
export interface RecordsFileReload {
  records: number;
  malformed: number;
}

/** Events of a `RecordsFileStore`: tests and callers await these instead of sleeping. */
export interface RecordsFileStoreEvents {
  /** The file changed and its new contents are being served. */
  reload: [RecordsFileReload];
  /** The file changed but could not be read; the previous contents are still served. */
  'reload-error': [Error];
}

const DEFAULT_DEBOUNCE_MS = 100;

/**
 * A `ZoneStore` read from a YAML or JSON file mapping etcd key → record (an
 * object, or a JSON string as etcd would hold it): a stand-in for etcd on a
 * machine without one (docs/architecture.md §4.5).
 *
 * A bad value is skipped and counted (`malformed`); a bad file on `start()`
 * is a `ConfigError` naming the file and the problem. The file's directory is
 * watched (editors and Kubernetes ConfigMaps replace files by rename, which a
 * watch on the file itself would lose), changes are debounced, and a broken
 * rewrite keeps the previous contents. `close()` stops watching; safe twice.
 */
export class RecordsFileStore extends EventEmitter<RecordsFileStoreEvents> implements ZoneStore {
  readonly path: string;
  readonly #logger: Logger;
  readonly #debounceMs: number;
  #current = new MemoryZoneStore();
  readonly #changes = new FollowedChanges();
  /** Stops listening to the contents served now (they tell of their own changes). */
  /** What `version` adds to the current contents' own: past every version the earlier contents had. */
  #versionBase = 0;
  /** The text being served, to skip re-reads that find nothing new. */
  #text: string | undefined;
  /** The last text that failed, to report a broken file once, not on every event. */
  #failedText: string | undefined;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #starting: Promise<void> | undefined;
  #reading = false;
  #readAgain = false;
  #closed = false;

  constructor(path: string, options: RecordsFileStoreOptions = {}) {
    super();
    this.#changes.follow(this.#current, false);
    this.path = resolve(path);
    this.#logger = (options.logger ?? silentLogger).child({ file: this.path });
    this.#debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  }

  /** Read the file and start watching it. Rejects with a `ConfigError` when the file cannot be used. */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /** Stop watching; the last contents stay readable. Safe to call twice. */
  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#watcher?.close();
    this.#watcher = undefined;
    return Promise.resolve();
  }

  get malformed(): number {
    return this.#current.malformed;
  }

  /** How many valid records are served. */
  get size(): number {
    return this.#current.size;
  }

  /** Grows with every reload that serves new contents. */
  get version(): number {
    return this.#versionBase + this.#current.version;
  }

  onChange(listener: () => void): () => void {
    return this.#changes.add(listener);
  }

  subtree(keyPrefix: string): readonly ZoneEntry[] {
    return this.#current.subtree(keyPrefix);
  }

  get(key: string): ZoneEntry | undefined {
    return this.#current.get(key);
  }

  async #start(): Promise<void> {
    // Watch first: a change made while the first read runs is then not lost.
    const file = basename(this.path);
    try {
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, changed) => {
        // `..data` is how a Kubernetes ConfigMap volume swaps all its files at once.
        if (changed === null || changed === file || changed.startsWith('..')) this.#schedule();
      });
    } catch (err) {
      throw new ConfigError(`cannot watch records file "${this.path}": ${errorMessage(err)}`, { cause: err });
    }
    this.#watcher.on('error', (err) => {
      this.#logger.warn('records file watch failed, serving the last contents', { error: err });
    });
    try {
      const text = await this.#readText();
      const store = this.#parse(text);
      this.#serve(text, store);
      this.#logger.info('records file loaded', { records: store.size, malformed: store.malformed });
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#reload(), this.#debounceMs);
  }

  async #reload(): Promise<void> {
    if (this.#reading) {
      this.#readAgain = true;
      return;
    }
    this.#reading = true;
    try {
      let text: string | undefined;
      let store: MemoryZoneStore;
      try {
        text = await this.#readText();
        // Nothing new (another file in the directory changed), or the same broken text reported already.
        if (this.#closed || text === this.#text || text === this.#failedText) return;
        store = this.#parse(text);
      } catch (err) {
        if (this.#closed) return;
        this.#failedText = text;
        this.#logger.warn('cannot reload records file, serving the previous contents', { error: errorMessage(err) });
        this.emit('reload-error', err as Error);
        return;
      }
      this.#failedText = undefined;
      this.#serve(text, store);
      this.#logger.info('records file reloaded', { records: store.size, malformed: store.malformed });
      this.emit('reload', { records: store.size, malformed: store.malformed });
    } finally {
      this.#reading = false;
      if (this.#readAgain) {
        this.#readAgain = false;
        this.#schedule();
      }
    }
  }

  #serve(text: string, store: MemoryZoneStore): void {
    for (const { key, error } of store.malformedValues()) {
      this.#logger.warn('skipping malformed skydns record', { key, error: error.message });
    }
    for (const key of keysOutsideTree(store)) {
      this.#logger.warn('records file key does not start with "/", it is never served', { key });
    }
    this.#text = text;
    this.#versionBase = this.version + 1;
    this.#current = store;
    this.#changes.follow(store);
  }

  async #readText(): Promise<string> {
    try {
      return await readFile(this.path, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read records file "${this.path}": ${errorMessage(err)}`, { cause: err });
    }
  }

  /** Parse the file's text; a `ConfigError` names the file and what is wrong with it. */
  #parse(text: string): MemoryZoneStore {
    let document: unknown;
    try {
      // YAML 1.2 is a superset of JSON, so one parser reads both; duplicate keys are errors.
      document = parse(text, { logLevel: 'error', uniqueKeys: true });
    } catch (err) {
      throw new ConfigError(`cannot parse records file "${this.path}": ${firstLine(errorMessage(err))}`, { cause: err });
    }
    if (typeof document !== 'object' || document === null || Array.isArray(document)) {
      const got = document === null ? 'an empty document' : Array.isArray(document) ? 'a list' : JSON.stringify(document);
      throw new ConfigError(`cannot use records file "${this.path}": expected a mapping of etcd key to record, got ${got}`);
    }
    return MemoryZoneStore.fromValues(Object.entries(document as Record<string, unknown>));
  }
}

function keysOutsideTree(store: MemoryZoneStore): string[] {
  const all = store.subtree('');
  return all.filter((entry) => !entry.key.startsWith('/')).map((entry) => entry.key);
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? text;
}
