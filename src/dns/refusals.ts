import { LogThrottle } from '../core/log-throttle.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { Rcode, createReply, type DnsMessage } from './codec.js';
import type { DnsRequest } from './handler.js';

/**
 * Why a query was REFUSED (RFC 1035 §4.1.1: "for policy reasons"):
 * - `noUpstream`: the stub has no resolver to send the name to (resolv.conf
 *   names only the stub itself, and no `--upstream`);
 * - `notAllowed`: the client is outside `--allow-from`;
 * - `outsideZone`: `srvlink dns` does not serve the name's zone;
 * - `unsupported`: a class other than IN, or a zone transfer.
 */
export type RefusalReason = 'noUpstream' | 'notAllowed' | 'outsideZone' | 'unsupported';

/** Refusals so far, by reason. */
export type RefusalCounts = Record<RefusalReason, number>;

const LEVEL: Record<RefusalReason, 'warn' | 'info' | 'debug'> = {
  // A resolver with nowhere to send names is a misconfiguration; the others are clients' doing.
  noUpstream: 'warn',
  notAllowed: 'info',
  outsideZone: 'info',
  // CH-class probes (`version.bind`, the admin endpoint's own readiness check) are routine.
  unsupported: 'debug',
};

/**
 * Where REFUSED replies are made, so that none is silent: each is counted by
 * reason, and the first of each reason is logged (with the name and client),
 * the rest only counted (a flood of refused queries must not flood the log).
 */
export class Refusals {
  readonly counts: RefusalCounts = { noUpstream: 0, notAllowed: 0, outsideZone: 0, unsupported: 0 };
  readonly #log: Logger;
  /** Once per reason: the first refusal of each is the line, the counts say the rest. */
  readonly #logged = new LogThrottle({ interval: Number.POSITIVE_INFINITY });

  constructor(logger: Logger = silentLogger) {
    this.#log = logger;
  }

  /** Count and (the first time for `reason`) log a refusal; the REFUSED reply to `request`. */
  refuse(request: DnsRequest, reason: RefusalReason, fields: { ra?: boolean } = {}): DnsMessage {
    this.counts[reason] += 1;
    if (this.#logged.take(reason) !== undefined) {
      const question = request.message.questions[0];
      this.#log[LEVEL[reason]]('dns query refused, further refusals for this reason are counted only', {
        reason,
        name: question?.name,
        type: question?.type,
        client: request.client.address,
      });
    }
    return createReply(request.message, { rcode: Rcode.REFUSED, ...(fields.ra ? { flags: { ra: true } } : {}) });
  }
}
