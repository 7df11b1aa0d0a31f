import { fieldError, type FieldProblem } from '../core/field-problem.js';
import { MAX_RECORD_TTL, SKYDNS_RECORD_DEFAULTS, classifyHost } from './skydns-record.js';

/**
 * The JSON value a writer stores under a SkyDNS key, as SkyDNS, the CoreDNS
 * etcd plugin and `parseSkydnsRecord` read it (CoreDNS `plugin/etcd/msg.Service`;
 * docs/architecture.md §4.5). Field order is the order written.
 */
export interface RecordValue {
  /** IP address or host name other instances connect to. */
  readonly host: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
  /** DNS TTL of answers built from this record, seconds; left out when not given. */
  readonly ttl?: number;
}

export interface RecordValueOptions {
  /** An IP address or a host name, already expanded (`expandVars`). */
  host: string;
  /** 1-65535. */
  port: number;
  /** Default 10 (`SKYDNS_RECORD_DEFAULTS`). */
  priority?: number;
  /** Default 100 (`SKYDNS_RECORD_DEFAULTS`). */
  weight?: number;
  /**
   * DNS TTL, seconds. Default: left out (readers then use their own default,
   * CoreDNS 300, capped by what is left of the lease). The CLI passes the
   * lease TTL, so no cache keeps an answer longer than the lease
   * that vouches for it.
   */
  ttl?: number;
}

/** The fields of a record value. */
export type RecordValueField = 'host' | 'port' | 'priority' | 'weight' | 'ttl';

/**
 * Why `options` cannot make a record value, or undefined: a host that is
 * neither an IP address nor a host name (`classifyHost`, as readers decide),
 * port 0 (nothing can connect to it), a priority or weight outside 0-65535
 * (the SRV fields are 16 bits, RFC 2782), a TTL below 1 s. `config/` calls it
 * to word the message with the flag; `recordValue` checks it again as an invariant.
 */
export function recordValueProblem(options: RecordValueOptions): FieldProblem<RecordValueField> | undefined {
  if (classifyHost(options.host) === undefined) return { field: 'host', value: options.host, problem: 'expected an IP address or a host name that other machines can reach' };
  const ranges: [RecordValueField, number | undefined, number, number][] = [
    ['port', options.port, 1, 0xffff],
    ['priority', options.priority, 0, 0xffff],
    ['weight', options.weight, 0, 0xffff],
    ['ttl', options.ttl, 1, MAX_RECORD_TTL],
  ];
  for (const [field, value, min, max] of ranges) {
    if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) {
      return { field, value: String(value), problem: `expected a whole number from ${min} to ${max}` };
    }
  }
  return undefined;
}

/**
 * Build the value one instance writes, priority and weight written out
 * (`SKYDNS_RECORD_DEFAULTS`). Throws an `InvalidArgumentError` naming the
 * field when `recordValueProblem` finds one (user input is checked before, in `config/`).
 */
export function recordValue(options: RecordValueOptions): RecordValue {
  const bad = recordValueProblem(options);
  if (bad !== undefined) throw fieldError(bad);
  const value: RecordValue = {
    host: options.host,
    port: options.port,
    priority: options.priority ?? SKYDNS_RECORD_DEFAULTS.priority,
    weight: options.weight ?? SKYDNS_RECORD_DEFAULTS.weight,
    ...(options.ttl === undefined ? {} : { ttl: options.ttl }),
  };
  return Object.freeze(value);
}
