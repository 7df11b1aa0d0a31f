import { isIP } from 'node:net';
import { isDomainName, isHostName } from '../core/dns-name.js';
import { ConfigError, InvalidArgumentError, SrvlinkError } from '../core/errors.js';
import { formatHostPort, parseHostPort } from '../core/host-port.js';
import type { Backend, BackendSet, BackendSource } from './backend-source.js';

/** One backend as configured: `--backend SERVICE=HOST:PORT` or an entry of the config file. */
export interface StaticBackend {
  /** An IP address, or a host name that `net.connect` resolves when dialing (through the system resolver). */
  host: string;
  /** 1-65535. */
  port: number;
  /** RFC 2782 priority, lower is tried first; default 10 (as a SkyDNS record without one). */
  priority?: number;
  /** RFC 2782 weight; default 100 (as a SkyDNS record without one), so unweighted backends share load equally. */
  weight?: number;
}

export interface StaticBackendSourceOptions {
  /** The service (SRV) name the set is published under. */
  name: string;
  /** The backends; none at all makes `current()` reject with `ERR_DISCOVERY`. */
  backends: readonly StaticBackend[];
  /** Clock for `updatedAt` (ms since the epoch); `Date.now` by default. */
  now?: () => number;
}

/** What `parseStaticBackends` reads from `SERVICE=HOST:PORT[,HOST:PORT...]`. */
export interface ParsedStaticBackends {
  /** SERVICE as written (`zookeeper`, `zookeeper.env2` or a full SRV name); resolving it to an SRV name is the caller's job. */
  service: string;
  backends: StaticBackend[];
}

const DEFAULT_PRIORITY = 10;
const DEFAULT_WEIGHT = 100;
const EXPECTED = 'expected SERVICE=HOST:PORT[,HOST:PORT...]';

/**
 * The `static` discovery (docs/architecture.md §4.2): backends given in the
 * configuration, for demos, tests and manual overrides. `current()` resolves
 * at once with status `static`; the set never changes, so `onUpdate`
 * listeners are never called.
 *
 * Each backend's host becomes its only "address": an IP address is dialed as
 * is; a host name is kept as written and resolved by `net.connect` (the
 * system resolver, `/etc/hosts` included) on every dial, not here.
 * Priority defaults to 10 and weight to 100, what a SkyDNS record without
 * those fields gets (docs/architecture.md §4.5), so that a static entry means what the
 * same entry in etcd would mean and equal weights share load equally under
 * RFC 2782 ordering.
 */
export class StaticBackendSource implements BackendSource {
  readonly #name: string;
  readonly #set: BackendSet;
  #closed = false;

  constructor(options: StaticBackendSourceOptions) {
    if (typeof options.name !== 'string' || options.name.trim() === '') {
      throw new InvalidArgumentError(`invalid static discovery option "name": "${String(options.name)}", expected a service name`);
    }
    this.#name = options.name;
    const backends = options.backends.map((b) => checkBackend(b, this.#name));
    this.#set = Object.freeze({
      name: this.#name,
      status: 'static',
      backends: Object.freeze(backends),
      updatedAt: (options.now ?? Date.now)(),
      stale: false,
    });
  }

  /** Nothing to start: resolves at once. */
  start(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * The configured set, at once. Rejects with `ERR_DISCOVERY` when no backend
   * was configured, and after `close()` (as every source does).
   */
  current(): Promise<BackendSet> {
    if (this.#closed) return Promise.reject(new SrvlinkError('ERR_DISCOVERY', `no backends for "${this.#name}": discovery is closed`));
    if (this.#set.backends.length === 0) {
      return Promise.reject(new SrvlinkError('ERR_DISCOVERY', `no backends for "${this.#name}": none configured, expected --backend SERVICE=HOST:PORT`));
    }
    return Promise.resolve(this.#set);
  }

  /** Safe to call twice. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  /** The set never changes: the listener is never called. */
  onUpdate(_listener: (set: BackendSet) => void): () => void {
    return () => undefined;
  }
}

/**
 * Parse `SERVICE=HOST:PORT[,HOST:PORT...]` (the value of `--backend`, one
 * entry of `SRVLINK_BACKEND` or of the config file). HOST is an IP address
 * (IPv6 in brackets: `[::1]:5432`) or a host name; PORT is 1-65535. `what`
 * names the setting in errors (`--backend`). Throws `ConfigError` naming
 * `what`, the value and what is expected. Pure.
 */
export function parseStaticBackends(value: string, what: string): ParsedStaticBackends {
  const fail = (why: string): never => {
    throw new ConfigError(`invalid ${what} "${value}": ${why}, ${EXPECTED}`);
  };
  const equals = value.indexOf('=');
  if (equals === -1) fail('missing "="');
  const service = value.slice(0, equals).trim();
  if (service === '') fail('missing SERVICE');
  if (!isDomainName(service)) fail(`"${service}" is not a service name`);
  const list = value.slice(equals + 1);
  if (list.trim() === '') fail('missing HOST:PORT');
  const seen = new Set<string>();
  const backends = list.split(',').map((item): StaticBackend => {
    const text = item.trim();
    if (text === '') fail('empty HOST:PORT in the list');
    // parseHostPort names the value and the part that is wrong: `invalid --backend "zk=a": backend "a": missing port, ...`.
    const { host, port } = parseHostPort(text, `${what} "${value}": backend`);
    if (port === 0) fail(`backend "${text}" has port 0, which cannot be dialed`);
    const key = formatHostPort({ host: host.toLowerCase(), port });
    if (seen.has(key)) fail(`backend "${text}" is listed twice`);
    seen.add(key);
    return { host, port };
  });
  return { service, backends };
}

/** Validate one configured backend and fill in the defaults. */
function checkBackend(backend: StaticBackend, name: string): Backend {
  const where = `static backend "${formatHostPort({ host: String(backend.host), port: backend.port })}" of "${name}"`;
  const host = typeof backend.host === 'string' ? backend.host.trim() : '';
  if (isIP(host) === 0 && !isHostName(host)) {
    throw new InvalidArgumentError(`invalid ${where}: "${String(backend.host)}" is neither an IP address nor a host name`);
  }
  const check = (field: 'port' | 'priority' | 'weight', value: number, min: number, max: number): number => {
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new InvalidArgumentError(`invalid ${where}: ${field} ${String(value)}, expected an integer ${min}-${max}`);
    }
    return value;
  };
  // RFC 2782: port, priority and weight are 16-bit unsigned integers; port 0 cannot be dialed.
  return Object.freeze({
    target: host,
    port: check('port', backend.port, 1, 65535),
    priority: check('priority', backend.priority ?? DEFAULT_PRIORITY, 0, 65535),
    weight: check('weight', backend.weight ?? DEFAULT_WEIGHT, 0, 65535),
    addresses: Object.freeze([host]),
  });
}
