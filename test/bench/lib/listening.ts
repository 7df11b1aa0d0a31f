import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Whether a TCP socket of this network namespace listens on `port` (any address), from /proc/net/tcp. */
function listensOn(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  // Rows: "sl local_address rem_address st ...", state 0A is LISTEN.
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .some((row) => row.includes(hex) && row.trim().split(/\s+/)[3] === '0A' && (row.trim().split(/\s+/)[1] ?? '').endsWith(hex.trim()));
}

/**
 * Resolves once a TCP socket listens on `port`. Reads the socket table
 * rather than connecting: a test connection would reach the backend
 * behind a proxy (iperf3's server takes it for a client). Polls, as the
 * tools say nothing when they listen; rejects after `timeoutMs`, or as
 * soon as `failed()` says the tool died.
 */
export async function listening(port: number, what: string, failed: () => boolean = () => false, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (failed()) throw new Error(`${what} exited before listening on ${port}`);
    if (listensOn(port)) return;
    // The table is long when thousands of sockets listen (the scale curve): not too often.
    await sleep(50);
  }
  throw new Error(`${what}: nothing listens on port ${port} after ${timeoutMs} ms`);
}
