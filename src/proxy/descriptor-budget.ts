import { openFileLimit } from '../core/open-file-limit.js';

/** Descriptors kept for everything but forwarded pairs: the event loop, stdio, the DNS stub and its clients, etcd, admin, logs. */
export function descriptorReserve(limit: number): number {
  return Math.min(1024, 64 + Math.floor(limit / 8));
}

/**
 * How many forwarded connections the open-file limit leaves room for,
 * shared by every forwarder of the process: each takes two descriptors
 * (the client's and the backend's) on either plane, and a plane's fixed
 * descriptors (the native plane's pipes, held only while bytes are in
 * flight, and its epoll descriptors) are set aside once. Past it a new client is closed at once and
 * counted, as past `--max-conns`, instead of reaching the limit itself: at
 * EMFILE, libuv accepts and closes pending clients with nothing counted or
 * logged, and a dial that cannot get a socket would be taken for a failing
 * backend.
 */
export class DescriptorBudget {
  /** The open-file limit it was computed from. */
  readonly limit: number | undefined;
  /** Descriptors for pairs and fixed holdings: the limit less the reserve; Infinity when the limit is unknown. */
  readonly #room: number;
  #fixed = 0;
  readonly #holders = new Set<object>();
  #descriptors = 0;
  #inUse = 0;

  constructor(limit: number | undefined) {
    this.limit = limit;
    this.#room = limit === undefined ? Number.POSITIVE_INFINITY : limit - descriptorReserve(limit);
  }

  /** Forwarded connections at once, at `perPair` descriptors each (two: the JS plane's); always room for one. */
  capacityFor(perPair: number): number {
    return Math.max(1, Math.floor((this.#room - this.#fixed) / perPair));
  }

  /** Connections at once on the JS plane (two descriptors each); Infinity when the limit is unknown. */
  get capacity(): number {
    return this.capacityFor(2);
  }

  /** Set aside `descriptors` a holder (a data plane) keeps whatever the number of pairs; once per holder. */
  hold(holder: object, descriptors: number): void {
    if (descriptors <= 0 || this.#holders.has(holder)) return;
    this.#holders.add(holder);
    this.#fixed += descriptors;
  }

  /** Take room for one connection of `descriptors` (default two); false when there is none. */
  take(descriptors = 2): boolean {
    const room = Math.max(this.#room - this.#fixed, descriptors);
    if (this.#descriptors + descriptors > room) return false;
    this.#descriptors += descriptors;
    this.#inUse++;
    return true;
  }

  /** Give back what `take(descriptors)` took. */
  release(descriptors = 2): void {
    if (this.#inUse === 0) return;
    this.#inUse--;
    this.#descriptors = Math.max(0, this.#descriptors - descriptors);
  }

  /** Connections holding room now. */
  get inUse(): number {
    return this.#inUse;
  }
}

/** The budget of this process, read once. */
let processBudget: DescriptorBudget | undefined;
export function processDescriptorBudget(): DescriptorBudget {
  processBudget ??= new DescriptorBudget(openFileLimit());
  return processBudget;
}
