import { openFileLimit } from '../core/open-file-limit.js';

/** Descriptors kept for everything but forwarded pairs: the event loop, stdio, the DNS stub and its clients, etcd, admin, logs. */
export function descriptorReserve(limit: number): number {
  return Math.min(1024, 64 + Math.floor(limit / 8));
}

/**
 * How many forwarded connections the open-file limit leaves room for,
 * shared by every forwarder of the process: each takes two descriptors (the
 * client's and the backend's). Past it a new client is closed at once and
 * counted, as past `--max-conns`, instead of reaching the limit itself: at
 * EMFILE, libuv accepts and closes pending clients with nothing counted or
 * logged, and a dial that cannot get a socket would be taken for a failing
 * backend.
 */
export class DescriptorBudget {
  /** Forwarded connections at once; Infinity when the limit is unknown. */
  readonly capacity: number;
  /** The open-file limit it was computed from. */
  readonly limit: number | undefined;
  #inUse = 0;

  constructor(limit: number | undefined) {
    this.limit = limit;
    this.capacity = limit === undefined ? Number.POSITIVE_INFINITY : Math.max(1, Math.floor((limit - descriptorReserve(limit)) / 2));
  }

  /** Take room for one connection; false when there is none. */
  take(): boolean {
    if (this.#inUse >= this.capacity) return false;
    this.#inUse++;
    return true;
  }

  release(): void {
    this.#inUse = Math.max(0, this.#inUse - 1);
  }

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
