import type { RejectedResponse } from './check-response.js';
import type { DnsMessage } from './codec.js';
import { pollDeadline } from '../core/poll-deadline.js';

/** What one exchange with one server over one transport ended with. */
export type ExchangeOutcome =
  | { kind: 'answer'; message: DnsMessage }
  | { kind: 'timeout' }
  | { kind: 'network'; error: Error }
  | { kind: 'invalid'; reason: string }
  | { kind: 'aborted' };

/** Options of one exchange (`udpExchange`, `tcpExchange`). */
export interface ExchangeAttemptOptions {
  /** ms to wait for an accepted response. */
  timeout: number;
  /** Aborting ends the exchange with `aborted` and closes its socket. */
  signal?: AbortSignal | undefined;
  /** Told of each response not accepted (`checkResponse`); the exchange goes on waiting. */
  onIgnored: (rejected: RejectedResponse) => void;
}

/** The end of one exchange, shared by both transports. */
export interface ExchangeEnd {
  /** End with `outcome`, unless it has ended already: the first outcome wins. */
  finish(outcome: ExchangeOutcome): void;
  /** Whether it has ended (socket callbacks that come later do nothing). */
  readonly done: boolean;
}

/**
 * The one way an exchange ends (`udpExchange`, `tcpExchange`): after
 * `options.timeout` ms with `timeout` (unless an answer that arrived by then
 * is still to be read), on abort with `aborted`, or with what
 * the transport found first; then the timer and the abort listener go,
 * `close` shuts the socket, and only once it has called back does `resolve`
 * get the outcome, so that nothing of the exchange outlives it.
 */
export function exchangeEnd(options: ExchangeAttemptOptions, close: (closed: () => void) => void, resolve: (outcome: ExchangeOutcome) => void): ExchangeEnd {
  const { signal } = options;
  let done = false;
  const finish = (outcome: ExchangeOutcome): void => {
    if (done) return;
    done = true;
    timer.clear();
    signal?.removeEventListener('abort', onAbort);
    close(() => resolve(outcome));
  };
  const onAbort = (): void => finish({ kind: 'aborted' });
  // Kept referenced on purpose: a pending query holds the process; `finish` always clears it.
  // After the poll: an answer that came in time while the process was busy wins over the timeout.
  const timer = pollDeadline(options.timeout, () => finish({ kind: 'timeout' }));
  signal?.addEventListener('abort', onAbort, { once: true });
  return {
    finish,
    get done() {
      return done;
    },
  };
}
