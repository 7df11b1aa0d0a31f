/**
 * Deadlines declared after the event loop has polled for I/O.
 *
 * libuv runs expired timers before it polls: a process that was busy or
 * descheduled past a deadline (a loaded machine, a long GC) comes back to
 * an expired timer and to an answer that arrived in time, both waiting, and
 * a plain setTimeout takes the timeout. A poll deadline fires one turn
 * later, in setImmediate's phase, so what came in before the deadline is
 * read first.
 */
export interface PollDeadline {
  /** Cancel the deadline, also when its timer ran and its callback waits for the poll. */
  clear(): void;
}

/** Call `onExpired` once `ms` have passed and the loop has polled for I/O since. Kept referenced, as a plain timer. */
export function pollDeadline(ms: number, onExpired: () => void): PollDeadline {
  let immediate: NodeJS.Immediate | undefined;
  const timer = setTimeout(() => (immediate = setImmediate(onExpired)), ms);
  return {
    clear() {
      clearTimeout(timer);
      if (immediate !== undefined) clearImmediate(immediate);
    },
  };
}
