import { isIP } from 'node:net';
import { isHostName } from '../core/dns-name.js';
import { fieldError, type FieldProblem } from './field-problem.js';

/**
 * The JSON value of a registration key, as SkyDNS and the CoreDNS etcd
 * plugin read it (CoreDNS `plugin/etcd/msg.Service`; docs/architecture.md §4.5). Field
 * order is the order written.
 */
export interface RegistrationValue {
  /** IP address or host name other instances connect to. */
  readonly host: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
  /** DNS TTL of answers built from this record, seconds; left out when not given. */
  readonly ttl?: number;
}

export interface RegistrationValueOptions {
  /** An IP address or a host name, already expanded (`expandVars`). */
  host: string;
  /** 1-65535. */
  port: number;
  /** Default 10. */
  priority?: number;
  /** Default 100. */
  weight?: number;
  /**
   * DNS TTL, seconds. Default: left out (readers then use their own default,
   * CoreDNS 300, capped by what is left of the lease). The CLI passes the
   * lease TTL, so no cache keeps an answer longer than the lease
   * that vouches for it.
   */
  ttl?: number;
}

/**
 * Defaults of the optional fields. They are the values CoreDNS assumes for a
 * missing or zero field (priority 10, weight counted as 100), written out
 * explicitly so that every reader (SkyDNS, CoreDNS, srvlink, a person with
 * etcdctl) sees the same record, whatever its own defaults.
 */
export const REGISTRATION_VALUE_DEFAULTS = { priority: 10, weight: 100 } as const;

/** RFC 2181 §8: a TTL is an unsigned 31-bit number. */
const MAX_TTL = 0x7fffffff;

/** The fields of a registration value. */
export type RegistrationValueField = 'host' | 'port' | 'priority' | 'weight' | 'ttl';

/**
 * Why `options` cannot make a registration value, or undefined: a host that
 * is neither an IP address nor a host name, port 0 (nothing can connect to
 * it), a priority or weight outside 0-65535 (the SRV fields are 16 bits, RFC
 * 2782), a TTL below 1 s. `config/` calls it to word the message with the
 * flag; `registrationValue` checks it again as an invariant.
 */
export function registrationValueProblem(options: RegistrationValueOptions): FieldProblem<RegistrationValueField> | undefined {
  if (!isHost(options.host)) return { field: 'host', value: options.host, problem: 'expected an IP address or a host name that other machines can reach' };
  const ranges: [RegistrationValueField, number | undefined, number, number][] = [
    ['port', options.port, 1, 0xffff],
    ['priority', options.priority, 0, 0xffff],
    ['weight', options.weight, 0, 0xffff],
    ['ttl', options.ttl, 1, MAX_TTL],
  ];
  for (const [field, value, min, max] of ranges) {
    if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) {
      return { field, value: String(value), problem: `expected a whole number from ${min} to ${max}` };
    }
  }
  return undefined;
}

/**
 * Build the value one instance registers, defaults filled in. Throws an
 * `InvalidArgumentError` naming the field when `registrationValueProblem`
 * finds one (user input is checked before, in `config/`).
 */
export function registrationValue(options: RegistrationValueOptions): RegistrationValue {
  const bad = registrationValueProblem(options);
  if (bad !== undefined) throw fieldError(bad);
  const value: RegistrationValue = {
    host: options.host,
    port: options.port,
    priority: options.priority ?? REGISTRATION_VALUE_DEFAULTS.priority,
    weight: options.weight ?? REGISTRATION_VALUE_DEFAULTS.weight,
    ...(options.ttl === undefined ? {} : { ttl: options.ttl }),
  };
  return Object.freeze(value);
}

/** An IP address (no IPv6 zone: it means nothing on another machine) or a host name, trailing dot allowed. */
function isHost(host: string): boolean {
  const family = isIP(host);
  if (family !== 0) return !host.includes('%');
  return isHostName(host);
}
