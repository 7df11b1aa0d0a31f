import { performance } from 'node:perf_hooks';

/** Something waiting with a deadline: told once when the deadline passes. */
export interface Expiring {
  expire(): void;
}

/** One entry of a `DeadlineQueue`; `cancel` it when what it waited for came in time. */
export interface Deadline {
  cancel(): void;
}

class Entry<T extends Expiring> implements Deadline {
  at: number;
  item: T | undefined;
  readonly #onCancel: () => void;

  constructor(onCancel: () => void, at: number, item: T) {
    this.#onCancel = onCancel;
    this.at = at;
    this.item = item;
  }

  cancel(): void {
    if (this.item === undefined) return;
    this.item = undefined;
    this.#onCancel();
  }
}

/**
 * Many deadlines on one timer: the connect timeouts and first waits of every
 * connection of a forwarder, where a timer per dial (or an
 * `AbortSignal.timeout`, far dearer) would cost an allocation, a list
 * insertion and a removal per connection. Entries sit in a binary heap by
 * due time; the single timer is armed for the earliest. With one timeout
 * for all (the usual case) every new entry is the latest, so adding is O(1)
 * and only expiry is O(log n). A cancelled entry stays in the heap until it
 * surfaces or the heap is compacted, which happens once dead entries
 * outnumber live ones: memory follows the entries pending, not the
 * connection rate.
 *
 * Never early: an entry expires once `now()` has reached its due time (a
 * timer that fires a little early is armed again for the rest). The timer
 * does not keep the process alive.
 */
export class DeadlineQueue<T extends Expiring> {
  readonly #now: () => number;
  #heap: Entry<T>[] = [];
  #live = 0;
  #timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (in `now()` time); Infinity when none is armed. */
  #armedFor = Number.POSITIVE_INFINITY;
  /**
   * Expiry runs one turn after the timer, after the loop's poll for I/O: a
   * process that was busy or descheduled past a deadline finds the expired
   * timer and the event that came in time (a connect that completed) both
   * waiting, and timers run first.
   */
  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
    setImmediate(this.#onFire);
  };
  readonly #onFire = (): void => this.#fire();
  readonly #onCancel = (): void => this.#cancelled();

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? (() => performance.now());
  }

  /** Entries neither expired nor cancelled. */
  get size(): number {
    return this.#live;
  }

  /** Entries held in memory, cancelled ones not yet dropped included. */
  get held(): number {
    return this.#heap.length;
  }

  /** Call `item.expire()` once `ms` have passed, unless the returned deadline is cancelled first. */
  add(ms: number, item: T): Deadline {
    const entry = new Entry(this.#onCancel, this.#now() + ms, item);
    const heap = this.#heap;
    heap.push(entry);
    siftUp(heap, heap.length - 1);
    this.#live++;
    if (entry.at < this.#armedFor) this.#arm(entry.at);
    return entry;
  }

  /** Take every pending entry out (none of them expires) and return their items, earliest first. */
  drain(): T[] {
    const items: T[] = [];
    const heap = this.#heap;
    heap.sort((a, b) => a.at - b.at);
    for (const entry of heap) {
      if (entry.item !== undefined) items.push(entry.item);
      entry.item = undefined;
    }
    this.#heap = [];
    this.#live = 0;
    this.#disarm();
    return items;
  }

  #cancelled(): void {
    this.#live--;
    if (this.#live === 0) {
      // Nothing pending: drop the dead entries at once. The timer stays: one
      // connection at a time would otherwise arm and clear one per dial; it
      // fires once, finds nothing due, and stops.
      this.#heap = [];
    } else if (this.#heap.length > 64 && this.#heap.length > 2 * this.#live) {
      this.#compact();
    }
  }

  #fire(): void {
    const heap = this.#heap;
    const now = this.#now();
    const due: T[] = [];
    for (let top = heap[0]; top !== undefined && (top.item === undefined || top.at <= now); top = heap[0]) {
      pop(heap);
      if (top.item === undefined) continue;
      due.push(top.item);
      top.item = undefined;
      this.#live--;
    }
    const next = heap[0];
    if (next !== undefined && next.at < this.#armedFor) this.#arm(next.at);
    // After the heap is consistent: an expiry may add or cancel entries.
    for (const item of due) item.expire();
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedFor = at;
    // Unreferenced: whatever waits on an entry (a socket being dialed, a client) keeps the process alive itself.
    this.#timer = setTimeout(this.#onTimer, Math.max(1, Math.ceil(at - this.#now()))).unref();
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
  }

  #compact(): void {
    const live = this.#heap.filter((entry) => entry.item !== undefined);
    for (let i = (live.length >> 1) - 1; i >= 0; i--) siftDown(live, i);
    this.#heap = live;
  }
}

function siftUp<T extends Expiring>(heap: Entry<T>[], index: number): void {
  const entry = heap[index] as Entry<T>;
  while (index > 0) {
    const parent = (index - 1) >> 1;
    const above = heap[parent] as Entry<T>;
    if (above.at <= entry.at) break;
    heap[index] = above;
    index = parent;
  }
  heap[index] = entry;
}

function siftDown<T extends Expiring>(heap: Entry<T>[], index: number): void {
  const entry = heap[index] as Entry<T>;
  const length = heap.length;
  for (;;) {
    let child = 2 * index + 1;
    if (child >= length) break;
    const right = child + 1;
    if (right < length && (heap[right] as Entry<T>).at < (heap[child] as Entry<T>).at) child = right;
    const below = heap[child] as Entry<T>;
    if (below.at >= entry.at) break;
    heap[index] = below;
    index = child;
  }
  heap[index] = entry;
}

function pop<T extends Expiring>(heap: Entry<T>[]): void {
  const last = heap.pop() as Entry<T>;
  if (heap.length === 0) return;
  heap[0] = last;
  siftDown(heap, 0);
}
