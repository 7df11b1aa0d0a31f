import type { ErrorCode } from '../core/errors.js';
import { formatHostPort, type HostPort } from '../core/host-port.js';
import { rcodeName } from './codec.js';

/** Why a server did not give a final answer; `rank` orders them by how much they tell. */
export type ServerFailure =
  | { kind: 'network'; rank: 1; error: Error }
  | { kind: 'timeout'; rank: 2 }
  | { kind: 'invalid'; rank: 3; reason: string }
  | { kind: 'truncated'; rank: 4 }
  | { kind: 'rcode'; rank: 5; rcode: number };

/** The error code for the most telling failure rank. */
const FAILURE_CODES: Readonly<Record<ServerFailure['rank'], ErrorCode>> = {
  1: 'ERR_DNS_UNREACHABLE',
  2: 'ERR_DNS_TIMEOUT',
  3: 'ERR_DNS_BAD_RESPONSE',
  4: 'ERR_DNS_TRUNCATED',
  5: 'ERR_DNS_SERVER_FAILURE',
};

/**
 * The one failure of an exchange no server answered, from the most telling
 * failure of each server: its code (the highest rank among them), the
 * wording (`no answer from A, B within 200 ms; C answered SERVFAIL (2
 * attempts per server)`), and the last socket error as the cause. Pure.
 */
export function exchangeFailure(
  failures: readonly { server: HostPort; failure: ServerFailure }[],
  settings: { timeout: number; attempts: number },
): { code: ErrorCode; message: string; cause: Error | undefined } {
  const top = Math.max(...failures.map((f) => f.failure.rank)) as ServerFailure['rank'];
  const rounds = settings.attempts === 1 ? '1 attempt' : `${settings.attempts} attempts`;
  const causes = failures.flatMap((f) => (f.failure.kind === 'network' ? [f.failure.error] : []));
  return {
    code: FAILURE_CODES[top] ?? 'ERR_DNS_UNREACHABLE',
    message: `${describeFailures(failures, settings.timeout)} (${rounds} per server)`,
    cause: causes.at(-1),
  };
}

/** Describe why each server failed, timeouts grouped: `no answer from A, B within 200 ms; A answered SERVFAIL`. */
function describeFailures(failures: readonly { server: HostPort; failure: ServerFailure }[], timeout: number): string {
  const parts: string[] = [];
  const silent = failures.filter((f) => f.failure.kind === 'timeout').map((f) => formatHostPort(f.server));
  if (silent.length > 0) parts.push(`no answer from ${silent.join(', ')} within ${timeout} ms`);
  for (const { server, failure } of failures) {
    const where = formatHostPort(server);
    switch (failure.kind) {
      case 'timeout':
        break;
      case 'network':
        parts.push(`cannot reach ${where}: ${(failure.error as NodeJS.ErrnoException).code ?? failure.error.message}`);
        break;
      case 'invalid':
        parts.push(`${where} sent an unreadable tcp stream: ${failure.reason}`);
        break;
      case 'truncated':
        parts.push(`${where} answered truncated over tcp as well`);
        break;
      case 'rcode':
        parts.push(`${where} answered ${rcodeName(failure.rcode)}`);
        break;
    }
  }
  return parts.join('; ');
}
