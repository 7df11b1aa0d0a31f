import { ConfigError } from '../core/errors.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import { DNS_CLIENT_DEFAULTS } from '../dns/client.js';
import { parseServerAddress, type HostPort } from '../core/host-port.js';
import { serviceSrvName } from '../discovery/service-name.js';
import { describeSource, splitList, type OptionSource } from './option-source.js';

/** Settings of `srvlink resolve`, validated and frozen. */
export interface ResolveConfig {
  readonly service: string;
  /** The SRV name the service stands for, fully qualified. */
  readonly srvName: string;
  readonly domain: string | undefined;
  /** Cluster DNS servers; empty means "the system's resolvers". */
  readonly clusterDns: readonly HostPort[];
  /** Per-attempt timeout in ms. */
  readonly timeout: number;
  readonly json: boolean;
}

export interface ResolveInput {
  domain?: string;
  clusterDns?: string[] | string;
  timeout?: string;
  json?: boolean;
}

export const RESOLVE_DEFAULTS = { timeout: formatDuration(DNS_CLIENT_DEFAULTS.timeout) } as const;

/** Validate `srvlink resolve SERVICE` options (pure; throws `ConfigError`). */
export function parseResolveConfig(
  service: string,
  input: ResolveInput,
  sources: Partial<Record<keyof ResolveInput, OptionSource>> = {},
): ResolveConfig {
  const name = (key: keyof ResolveInput, flag: string): string => describeSource(sources[key] ?? { flag, from: 'cli' });
  const domain = input.domain?.trim() || undefined;
  const timeout = parseDuration(input.timeout ?? RESOLVE_DEFAULTS.timeout, name('timeout', '--timeout'));
  if (timeout <= 0) throw new ConfigError(`invalid ${name('timeout', '--timeout')} "${input.timeout}": must be more than 0`);
  return Object.freeze({
    service,
    srvName: serviceSrvName(service, domain ?? ''),
    domain,
    clusterDns: Object.freeze(splitList(input.clusterDns).map((v) => parseServerAddress(v, name('clusterDns', '--cluster-dns'), 53))),
    timeout,
    json: input.json === true,
  });
}
