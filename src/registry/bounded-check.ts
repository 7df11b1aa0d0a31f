import { errorMessage } from '../core/errors.js';
import type { CheckResult } from './health-check.js';
import { pollDeadline } from '../core/poll-deadline.js';

/** What an attempt tells its bound: the step it is in, for the reason of a timeout. */
export type NotePhase = (phase: string) => void;

/**
 * Run one check attempt under a deadline that covers the whole of it
 * (connect, send, answer): `attempt` gets a signal that aborts after
 * `timeout` ms or when `outer` aborts, whichever comes first, and must stop
 * its I/O when it does. A timeout fails with the step the attempt was in
 * ("timed out after 1000 ms waiting for the answer"); a rejection fails with
 * its message. Never rejects.
 */
export async function boundedCheck(
  timeout: number,
  outer: AbortSignal | undefined,
  attempt: (signal: AbortSignal, note: NotePhase) => Promise<CheckResult>,
): Promise<CheckResult> {
  if (outer?.aborted) return { ok: false, reason: 'check cancelled' };
  const controller = new AbortController();
  let phase = 'connecting';
  let settle: (result: CheckResult) => void = () => undefined;
  const early = new Promise<CheckResult>((resolve) => (settle = resolve));
  // After the poll: an answer that came in time while the process was busy is taken, not a timeout.
  const timer = pollDeadline(timeout, () => {
    settle({ ok: false, reason: `timed out after ${timeout} ms ${phase}` });
    controller.abort();
  });
  const onOuterAbort = (): void => {
    settle({ ok: false, reason: 'check cancelled' });
    controller.abort();
  };
  outer?.addEventListener('abort', onOuterAbort, { once: true });
  try {
    // The first to settle wins: an attempt that ignored its signal cannot hold the check past its deadline.
    return await Promise.race([
      early,
      attempt(controller.signal, (next) => (phase = next)).catch((err: unknown): CheckResult => ({ ok: false, reason: errorMessage(err) })),
    ]);
  } finally {
    timer.clear();
    outer?.removeEventListener('abort', onOuterAbort);
  }
}
