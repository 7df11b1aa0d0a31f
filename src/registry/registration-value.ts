import { isIP } from 'node:net';
import { isHostName } from '../core/dns-name.js';
import { ConfigError } from '../core/errors.js';

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
  /** `--host`, already expanded (`expandVars`). */
  host: string;
  /** `--port`, 1-65535. */
  port: number;
  /** `--priority`. Default 10. */
  priority?: number;
  /** `--weight`. Default 100. */
  weight?: number;
  /**
   * DNS TTL, seconds. Default: left out (readers then use their own default,
   * CoreDNS 300, capped by what is left of the lease). The CLI passes the
   * lease TTL (`--ttl`), so no cache keeps an answer longer than the lease
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

/**
 * Build and validate the value one instance registers. Throws a
 * `ConfigError` naming the flag and value when a field is out of range: a
 * host that is neither an IP address nor a host name, port 0 (nothing can
 * connect to it), a priority or weight outside 0-65535 (the SRV fields are
 * 16 bits, RFC 2782), a TTL below 1 s.
 */
export function registrationValue(options: RegistrationValueOptions): RegistrationValue {
  const host = options.host;
  if (!isHost(host)) {
    throw new ConfigError(`invalid --host "${host}": expected an IP address or a host name that other machines can reach`);
  }
  const integer = (flag: string, value: number, min: number, max: number): number => {
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(`invalid ${flag} "${String(value)}": expected a whole number from ${min} to ${max}`);
    }
    return value;
  };
  const value: RegistrationValue = {
    host,
    port: integer('--port', options.port, 1, 0xffff),
    priority: integer('--priority', options.priority ?? REGISTRATION_VALUE_DEFAULTS.priority, 0, 0xffff),
    weight: integer('--weight', options.weight ?? REGISTRATION_VALUE_DEFAULTS.weight, 0, 0xffff),
    ...(options.ttl === undefined ? {} : { ttl: integer('--ttl', options.ttl, 1, MAX_TTL) }),
  };
  return Object.freeze(value);
}

/** An IP address (no IPv6 zone: it means nothing on another machine) or a host name, trailing dot allowed. */
function isHost(host: string): boolean {
  const family = isIP(host);
  if (family !== 0) return !host.includes('%');
  return isHostName(host);
}
