import { isIP } from 'node:net';
import { canonicalName, isDomainName } from '../core/dns-name.js';
import { ConfigError } from '../core/errors.js';
import { formatHostPort, parseHostPort, parsePort, type HostPort } from '../core/host-port.js';
import { serviceSrvName } from '../discovery/service-name.js';
import type { LayeredValue } from './layer-settings.js';
import { invalidValue, readList } from './layered-value.js';
import { unknownKeyMessage } from './nearest-key.js';
import { describeSource, type OptionSource } from './option-source.js';

/** One local listener and the service behind it. */
export interface Mapping {
  readonly listen: HostPort;
  /** The service as written (`zookeeper`, `postgres.env2`, `_x._tcp.domain`). */
  readonly service: string;
  /** The SRV name it stands for, fully qualified. */
  readonly srvName: string;
  /**
   * Names the DNS stub answers with the listener's address: canonical (lower
   * case, no trailing dot). By default the service's short name and its name
   * in its environment (`zookeeper`, `zookeeper.env1.skydns.local`), plus any
   * `aliases` given with the mapping in the config file.
   */
  readonly aliases: readonly string[];
}

/**
 * The `--map` setting (docs/architecture.md §3): each `[ADDR:]PORT=SERVICE`
 * (or config file entry `{listen, service, aliases}`) read against the
 * container's `domain`, address-less ones given `defaultHost` (or the next
 * free 127.0.0.x when several share a port on loopback). Pure; a
 * `ConfigError` naming what the user typed for an entry that cannot be read,
 * two mappings on one address, a name that would lead to two listeners, or no
 * mapping at all.
 */
export function parseMappings(mapValue: LayeredValue, domain: string, defaultHost: string): Mapping[] {
  const mappings = assignAddresses(
    mapEntries(mapValue).map((entry) => parseMapping(entry, domain, mapValue.source)),
    defaultHost,
    mapValue.source,
  );
  const aliasOwner = new Map<string, string>();
  for (const mapping of mappings) {
    for (const alias of mapping.aliases) {
      const other = aliasOwner.get(alias);
      if (other !== undefined && other !== formatHostPort(mapping.listen)) {
        throw new ConfigError(`invalid ${describeSource(mapValue.source)}: name "${alias}" would lead to two listeners (${other} and ${formatHostPort(mapping.listen)}); give one of them other aliases`);
      }
      aliasOwner.set(alias, formatHostPort(mapping.listen));
    }
  }
  if (mappings.length === 0) {
    throw new ConfigError(`missing ${describeSource(mapValue.source)}: at least one [ADDR:]PORT=SERVICE mapping, e.g. --map 2181=zookeeper`);
  }
  return mappings;
}

/** A mapping before address assignment: `host` is missing when only a port was given. */
interface ParsedMapping {
  host: string | undefined;
  port: number;
  service: string;
  srvName: string;
  aliases: string[];
}

/** A `--map` value, with the extra aliases a config file entry may carry. */
interface MapEntry {
  text: string;
  aliases: string[];
}

function parseMapping({ text: entry, aliases: extra }: MapEntry, domain: string, source: OptionSource): ParsedMapping {
  const what = describeSource(source);
  const equals = entry.indexOf('=');
  if (equals <= 0 || equals === entry.length - 1) {
    throw new ConfigError(`invalid ${what} "${entry}": expected [ADDR:]PORT=SERVICE, e.g. 2181=zookeeper or 127.0.0.2:5432=postgres.env2`);
  }
  const left = entry.slice(0, equals).trim();
  const service = entry.slice(equals + 1).trim();
  let listen: { host: string | undefined; port: number };
  if (/^\d+$/.test(left)) {
    listen = { host: undefined, port: parsePort(left, `${what} "${entry}"`) };
  } else if (!left.includes(':')) {
    // `postgres=5432`: the service and the port the other way round (or no port at all).
    const example = /^\d+$/.test(service) ? `${service}=${left}` : '5432=postgres';
    throw new ConfigError(`invalid ${what} "${entry}": "${left}" is not a port; expected PORT=SERVICE (or ADDR:PORT=SERVICE), as in ${example}`);
  } else {
    listen = parseHostPort(left, `${what} "${entry}"`);
    if (isIP(listen.host ?? '') === 0) throw new ConfigError(`invalid ${what} "${entry}": the address to listen on must be an IP address, not "${listen.host}"`);
  }
  let srvName: string;
  try {
    srvName = serviceSrvName(service, domain);
  } catch (err) {
    throw new ConfigError(`invalid ${what} "${entry}": ${(err as Error).message}`);
  }
  const aliases = [...defaultAliases(service, srvName, domain)];
  for (const alias of extra) {
    const name = canonicalName(alias.trim());
    if (!isDomainName(name)) {
      throw new ConfigError(`invalid ${what} "${entry}": alias "${alias}" is not a valid DNS name`);
    }
    if (!aliases.includes(name)) aliases.push(name);
  }
  return { host: listen.host, port: listen.port, service, srvName, aliases };
}

/**
 * The names an app may use for a mapped service (docs/architecture.md §3): the service
 * as written and its name in its environment, canonical. `zookeeper` in
 * env1.skydns.local → `zookeeper`, `zookeeper.env1.skydns.local`;
 * `postgres.env2` → `postgres.env2`, `postgres.env2.skydns.local`; a full
 * SRV name `_x._tcp.ENVDOMAIN` → `x.ENVDOMAIN`, and `x` when ENVDOMAIN is
 * this container's environment.
 */
export function defaultAliases(service: string, srvName: string, domain: string): string[] {
  const canonical = srvName.replace(/\.$/, '');
  const labels = canonical.split('.');
  const name = (labels[0] ?? '').replace(/^_/, '');
  const environment = labels.slice(2).join('.');
  const inEnvironment = `${name}.${environment}`;
  const written = service.trim().toLowerCase().replace(/\.$/, '');
  if (written.startsWith('_')) {
    return environment === domain.replace(/\.$/, '') ? [name, inEnvironment] : [inEnvironment];
  }
  return written === inEnvironment ? [written] : [written, inEnvironment];
}

/**
 * Give address-less mappings the default address; when several share a port
 * on loopback, the next free 127.0.0.x (all of 127.0.0.0/8 is loopback on
 * Linux), so each gets its own listener. Two mappings on one address and
 * port are refused.
 */
function assignAddresses(parsed: ParsedMapping[], defaultHost: string, source: OptionSource): Mapping[] {
  const explicit = parsed.flatMap((m) => (m.host !== undefined && m.port !== 0 ? [formatHostPort({ host: m.host, port: m.port })] : []));
  const taken = new Set(explicit);
  if (taken.size !== explicit.length) {
    const twice = explicit.find((address, i) => explicit.indexOf(address) !== i);
    throw new ConfigError(`invalid ${describeSource(source)}: two mappings on ${twice}`);
  }
  const loopback = /^127\.0\.0\.(\d+)$/.exec(defaultHost);
  return parsed.map((m) => {
    const port = m.port;
    if (m.host !== undefined) return { listen: { host: m.host, port }, service: m.service, srvName: m.srvName, aliases: m.aliases };
    let host = defaultHost;
    if (port !== 0 && taken.has(formatHostPort({ host, port }))) {
      if (!loopback) {
        throw new ConfigError(
          `invalid ${describeSource(source)} "${port}=${m.service}": port ${port} is mapped twice on ${defaultHost}; give each an address (ADDR:PORT=SERVICE) or listen on loopback`,
        );
      }
      let last = Number(loopback[1]);
      do {
        last++;
        if (last > 254) throw new ConfigError(`invalid ${describeSource(source)}: too many mappings on port ${port}`);
        host = `127.0.0.${last}`;
      } while (taken.has(formatHostPort({ host, port })));
    }
    if (port !== 0) taken.add(formatHostPort({ host, port }));
    return { listen: { host, port }, service: m.service, srvName: m.srvName, aliases: m.aliases };
  });
}

const MAP_ENTRY_KEYS = ['listen', 'service', 'aliases'];

/**
 * `--map` values: strings (`[ADDR:]PORT=SERVICE`, comma lists from the
 * environment) or, in a config file, objects `{listen, service, aliases}`.
 */
function mapEntries(layered: LayeredValue): MapEntry[] {
  const items = Array.isArray(layered.value) ? layered.value : layered.value === undefined || layered.value === null ? [] : [layered.value];
  return items.flatMap((item): MapEntry[] => {
    if (item === null || typeof item !== 'object') return readList({ ...layered, value: item }).map((text) => ({ text, aliases: [] }));
    const entry = item as Record<string, unknown>;
    const unknown = Object.keys(entry).find((key) => !MAP_ENTRY_KEYS.includes(key));
    if (unknown !== undefined) throw new ConfigError(unknownKeyMessage(unknown, `${describeSource(layered.source)}, entry ${JSON.stringify(entry)}`, MAP_ENTRY_KEYS));
    if (entry.listen === undefined || typeof entry.service !== 'string') {
      throw invalidValue({ ...layered, value: item }, 'expected "[ADDR:]PORT=SERVICE" or {listen: "[ADDR:]PORT", service: NAME, aliases: [NAME, ...]}');
    }
    const aliases = entry.aliases === undefined ? [] : Array.isArray(entry.aliases) ? entry.aliases.map(String) : [String(entry.aliases)];
    return [{ text: `${String(entry.listen)}=${entry.service}`, aliases }];
  });
}
