import { SrvlinkError } from './errors.js';

/**
 * `promise`, or a rejection (`ERR_ABORTED`) as soon as `signal` aborts. The
 * promise itself goes on; only the wait for it ends.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new SrvlinkError('ERR_ABORTED', 'aborted'));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(new SrvlinkError('ERR_ABORTED', 'aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Wait `ms`, or less when `signal` aborts; never rejects (a stop is not a failure of the wait). */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** A promise with its `resolve` at hand, for "once the first X has happened". */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

/** A promise resolved from outside (`deferred<void>()` for a plain signal). */
export function deferred<T = void>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
