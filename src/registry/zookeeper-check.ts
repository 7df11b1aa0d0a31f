import { boundedCheck } from './bounded-check.js';
import type { CheckResult, HealthCheck } from './health-check.js';
import type { ServiceUrl } from './service-url.js';
import { answerExcerpt, tcpExchange } from './tcp-exchange.js';

/**
 * Modes of `srvr` in which a server answers clients: ZooKeeper 3.8's
 * `ServerStats.getServerState()`. `read-only` (a server cut off from its
 * quorum, with `readonlymode.enabled`) is left out: it refuses writes.
 */
const SERVING = /^Mode: (leader|follower|observer|standalone)\s*$/m;
const NOT_SERVING = 'This ZooKeeper instance is not currently serving requests';

/**
 * `zookeeper://HOST[:PORT]`: the `srvr` four-letter word; passes only in a
 * serving mode (leader, follower, observer, standalone). A server without a
 * quorum answers "not currently serving requests" and fails; a frozen one
 * does not answer and fails on the timeout. ZooKeeper closes the connection
 * after a four-letter word, so the server logs nothing but an INFO line
 * (a bare TCP connect makes it log a warning with a stack trace).
 * The server needs no configuration for it: `4lw.commands.whitelist`
 * defaults to `srvr` since ZooKeeper 3.5.3, and 3.8 answers `srvr` whatever
 * the list says (`FourLetterCommands.isEnabled` always adds it). The
 * whitelist answer is still understood, for builds that differ.
 */
export function zookeeperCheck(target: ServiceUrl, timeout: number): HealthCheck {
  return {
    description: `zookeeper://${target.hostPort}`,
    timeout,
    run: (outer) =>
      boundedCheck(timeout, outer, (signal, note) =>
        tcpExchange({ host: target.host, port: target.port, send: Buffer.from('srvr'), decide: decideSrvr, signal, note }),
      ),
  };
}

/** Decided once the server has closed: the whole answer is in. */
function decideSrvr(received: Buffer, ended: boolean): CheckResult | undefined {
  if (!ended) return undefined;
  const text = received.toString('utf8');
  const mode = SERVING.exec(text);
  if (mode) return { ok: true, reason: `mode ${mode[1] ?? '?'}` };
  if (text.includes(NOT_SERVING)) return { ok: false, reason: 'not serving requests (no quorum)' };
  if (text.includes('not in the whitelist')) return { ok: false, reason: 'srvr is not in the server\'s 4lw.commands.whitelist' };
  const other = /^Mode: (\S+)/m.exec(text);
  if (other) return { ok: false, reason: `mode ${other[1] ?? '?'} does not serve clients` };
  return { ok: false, reason: received.length === 0 ? 'closed without an answer' : `unexpected answer to srvr: ${answerExcerpt(received)}` };
}
