import { setTimeout as sleep } from 'node:timers/promises';

/** How long a test waits for a condition or an event: generous, machines are noisy. */
export const WAIT_TIMEOUT = 15_000;

/**
 * Poll `condition` every `interval` ms until it holds; reject after
 * `timeout` ms with `what` in the message. For states no event announces
 * (a counter reaching a value); await the event itself when there is one.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  options: { what?: string; timeout?: number; interval?: number } = {},
): Promise<void> {
  const timeout = options.timeout ?? WAIT_TIMEOUT;
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${options.what ?? 'a condition'}`);
    await sleep(options.interval ?? 10);
  }
}
