import { formatHostPort, type HostPort } from '../core/host-port.js';
import { boundedCheck } from './bounded-check.js';
import type { HealthCheck } from './health-check.js';
import { answerExcerpt, tcpExchange, type DecideAnswer } from './tcp-exchange.js';

/**
 * `tcp://HOST:PORT`, optionally with `--check-send BYTES` and `--check-expect
 * REGEX` (HAProxy's `tcp-check send` / `expect rstring`): connect, write the
 * bytes, and pass once what the server sent matches the regular expression
 * (multi-line: `^` and `$` match at every line). Without `expect` the check
 * passes once connected and the bytes are written. The timeout covers the
 * whole exchange, so a server that accepts (the kernel completes the
 * handshake of a frozen process) but does not answer fails.
 */
export function tcpCheck(target: HostPort, timeout: number, send: Buffer | undefined, expect: RegExp | undefined): HealthCheck {
  const details = [send === undefined ? '' : `send ${send.length} bytes`, expect === undefined ? '' : `expect ${String(expect)}`].filter((d) => d !== '');
  const decide: DecideAnswer | undefined =
    expect === undefined
      ? undefined
      : (received, ended) => {
          // The whole answer so far, every time: a match may straddle two reads.
          const match = expect.exec(received.toString('utf8'));
          if (match) return { ok: true, reason: `answer matched: ${JSON.stringify(match[0].slice(0, 60))}` };
          if (ended) return { ok: false, reason: received.length === 0 ? 'closed without an answer' : `answer did not match ${String(expect)}: ${answerExcerpt(received)}` };
          return undefined;
        };
  return {
    description: `tcp://${formatHostPort(target)}${details.length > 0 ? ` (${details.join(', ')})` : ''}`,
    timeout,
    run: (outer) => boundedCheck(timeout, outer, (signal, note) => tcpExchange({ host: target.host, port: target.port, send, decide, signal, note })),
  };
}
