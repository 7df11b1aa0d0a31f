import { SrvlinkError } from '../../src/core/errors.js';
import type { Backend, BackendSet, BackendSource } from '../../src/discovery/backend-source.js';

/** A backend for a test set: `port` on every address, priority 10 and weight 1 unless given. */
export function backend(addresses: string | string[], port: number, options: { priority?: number; weight?: number; target?: string } = {}): Backend {
  const list = typeof addresses === 'string' ? [addresses] : addresses;
  return { target: options.target ?? `${list[0] ?? 'none'}.`, port, priority: options.priority ?? 10, weight: options.weight ?? 1, addresses: list };
}

/**
 * A `BackendSource` whose set the test sets by hand: `set(backends)`,
 * `fail()` to make `current()` reject with ERR_DISCOVERY, `hold()` to make
 * `current()` wait until `release()`. Counts `current()` calls.
 */
export class TestSource implements BackendSource {
  readonly name: string;
  calls = 0;
  #set: BackendSet;
  #failing = false;
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  readonly #listeners = new Set<(set: BackendSet) => void>();

  constructor(backends: Backend[] = [], name = '_svc._tcp.env1.skydns.local.') {
    this.name = name;
    this.#set = this.#make(backends);
  }

  set(backends: Backend[]): void {
    this.#failing = false;
    this.#set = this.#make(backends);
    for (const listener of this.#listeners) listener(this.#set);
  }

  fail(): void {
    this.#failing = true;
  }

  /** `current()` waits until `release()`. */
  hold(): void {
    this.#gate = new Promise((resolve) => (this.#open = resolve));
  }

  release(): void {
    this.#open?.();
    this.#gate = undefined;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  async current(): Promise<BackendSet> {
    this.calls++;
    if (this.#gate) await this.#gate;
    if (this.#failing) throw new SrvlinkError('ERR_DISCOVERY', `cannot resolve "${this.name}": no usable backend set`);
    return this.#set;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  onUpdate(listener: (set: BackendSet) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #make(backends: Backend[]): BackendSet {
    return { name: this.name, status: 'static', backends, updatedAt: Date.now(), stale: false };
  }
}
