import type { BackendSet, BackendSource } from './backend-source.js';

/**
 * A `BackendSource` whose inner source can be replaced while connections
 * use it (a config reload that changes how a mapping finds its backends):
 * the forwarder keeps one source for its life, new connections ask the new
 * inner source, update listeners follow the swap. Owns its inner source:
 * `swap()` starts the new one and closes the old; `close()` closes the
 * current one.
 */
export class SwappableBackendSource implements BackendSource {
  #inner: BackendSource;
  #unsubscribe: () => void;
  #started = false;
  readonly #listeners = new Set<(set: BackendSet) => void>();

  constructor(inner: BackendSource) {
    this.#inner = inner;
    this.#unsubscribe = this.#follow(inner);
  }

  /** The source in use. */
  get inner(): BackendSource {
    return this.#inner;
  }

  start(): Promise<void> {
    this.#started = true;
    return this.#inner.start();
  }

  current(): Promise<BackendSet> {
    return this.#inner.current();
  }

  onUpdate(listener: (set: BackendSet) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Use `next` from now on: started (when this source was), then the old one closed. */
  async swap(next: BackendSource): Promise<void> {
    const old = this.#inner;
    if (this.#started) await next.start();
    this.#unsubscribe();
    this.#inner = next;
    this.#unsubscribe = this.#follow(next);
    await old.close();
  }

  close(): Promise<void> {
    this.#unsubscribe();
    return this.#inner.close();
  }

  #follow(source: BackendSource): () => void {
    return source.onUpdate((set) => {
      for (const listener of this.#listeners) listener(set);
    });
  }
}
