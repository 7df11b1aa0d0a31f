import { isIP } from 'node:net';
import type { Etcd3 } from 'etcd3';
import type { EtcdConfig } from '../config/etcd-config.js';
import type { RegisterConfig } from '../config/register-config.js';
import type { Mapping, RunConfig } from '../config/run-config.js';
import { ConfigError } from '../core/errors.js';
import { formatHostPort, type HostPort } from '../core/host-port.js';
import { listenError } from '../core/listen-error.js';
import type { Logger } from '../core/logger.js';
import type { BackendSource } from '../discovery/backend-source.js';
import { DnsBackendSource } from '../discovery/dns-backend-source.js';
import { StaticBackendSource } from '../discovery/static-backend-source.js';
import { DnsClient } from '../dns/client.js';
import type { DnsHandler } from '../dns/handler.js';
import { readResolvConf, rewriteFileInPlace, stubResolvConf, type ResolvConf } from '../dns/resolv-conf.js';
import { Forwarder } from '../proxy/forwarder.js';
import type { Registration, RegistrationState } from '../registry/registration.js';
import type { EtcdZoneStore } from '../skydns/etcd-zone-store.js';
import { createZoneHandler } from '../skydns/zone-handler.js';
import { createZoneResolver } from '../skydns/zone-resolver.js';
import type { ZoneEntry, ZoneStore } from '../skydns/zone-store.js';
import type { AliasAddresses } from '../stub/alias-handler.js';
import { defaultAllowFrom } from '../stub/allow-from.js';
import { createStub, type StubServer } from '../stub/create-stub.js';
import { createEtcdClient } from './etcd-client.js';
import { openEtcdZone, startRegistration } from './etcd-runtime.js';

/** A running ambassador: what `srvlink run` starts. */
export interface Ambassador {
  /** Each listener's bound address, in mapping order. */
  readonly listeners: readonly { address: HostPort; service: string; srvName: string }[];
  /** Withdraw every registration (revoke its lease), so no new client is sent here; safe to call twice. */
  deregister(): Promise<void>;
  /** Deregister, stop accepting, drain open connections, stop discovery. */
  close(reason?: string): Promise<void>;
  /** What runs now: listeners and the state of each registration. */
  status(): AmbassadorStatus;
}

/** A snapshot of a running ambassador. */
export interface AmbassadorStatus {
  listeners: Ambassador['listeners'];
  registrations: { key: string; state: RegistrationState }[];
}

export interface AmbassadorOptions {
  logger: Logger;
  /** etcd, for `--discovery etcd` and `--register`. */
  etcd?: EtcdConfig | undefined;
  /** The container's own services to register, after the listeners are up. */
  registrations?: readonly RegisterConfig[];
  /** For the etcd password (SRVLINK_ETCD_PASSWORD). */
  env?: NodeJS.ProcessEnv;
  /** Aborted when the process is told to stop: ends waits such as etcd not answering yet. */
  stop?: AbortSignal;
  /**
   * Runs once listeners and the stub are up, before registrations start
   * (the supervised command is spawned here). When it throws, everything
   * started is closed and the error is thrown.
   */
  beforeRegister?: () => Promise<void>;
}

/**
 * Wire the parts of `srvlink run` together (the composition root: features
 * do not import each other). Listeners come up first, all or none: when one
 * cannot bind, those already started are closed and the error is thrown.
 */
export async function startAmbassador(config: RunConfig, options: AmbassadorOptions): Promise<Ambassador> {
  const log = options.logger;
  // Read once, before anything could rewrite it: the container's resolvers
  // are the default cluster DNS and upstreams, never the stub itself.
  const resolvConf = readResolvConf(config.resolvConf);
  const systemResolvers = withoutStub(resolvConf.nameservers, config.dnsListen);
  const clusterDns = config.clusterDns.length > 0 ? [...config.clusterDns] : systemResolvers;
  const clusterClient =
    config.discovery === 'dns' && clusterDns.length > 0 ? new DnsClient({ servers: clusterDns, timeout: config.dnsTimeout, logger: log.child({ component: 'dns-client' }) }) : undefined;
  if (config.discovery === 'dns' && !clusterClient) {
    throw new ConfigError(`missing --cluster-dns: ${config.resolvConf} names no nameserver other than the stub itself to find services with`);
  }

  const stop = options.stop ?? new AbortController().signal;
  const etcdClient = options.etcd ? createEtcdClient(options.etcd, options.env ?? {}) : undefined;
  const zone = config.discovery === 'etcd' ? new LateZone(config.prefix) : undefined;
  // Every mapped service's environment is answered from etcd, the cluster domain or not.
  const zoneResolver = zone
    ? createZoneResolver({
        zones: [config.clusterDomain, ...config.mappings.map((m) => environmentOf(m.srvName))],
        prefix: config.prefix,
        store: zone,
        unavailable: () => zone.unavailable,
      })
    : undefined;
  const sources: BackendSource[] = [];
  const srvSources: DnsBackendSource[] = [];
  const forwarders: Forwarder[] = [];
  for (const mapping of config.mappings) {
    const mappingLog = log.child({ service: mapping.srvName });
    let source: BackendSource;
    if (config.discovery === 'static') {
      source = new StaticBackendSource({ name: mapping.srvName, backends: config.backends.get(mapping.srvName) ?? [] });
    } else {
      // etcd: the same lookupSrv over the in-memory zone, with the rules of `srvlink dns`; asked again on every watch event.
      const srv = new DnsBackendSource({
        srvName: mapping.srvName,
        resolver: zoneResolver ?? (clusterClient as DnsClient),
        ttlMin: config.ttlMin,
        ttlMax: config.ttlMax,
        staleMax: config.staleMax,
        logger: mappingLog,
      });
      srvSources.push(srv);
      source = srv;
    }
    sources.push(source);
    forwarders.push(
      new Forwarder({
        name: mapping.srvName,
        listen: mapping.listen,
        source,
        connectTimeout: config.connectTimeout,
        idleTimeout: config.idleTimeout,
        maxConnections: config.maxConns,
        ejectAfter: config.ejectAfter,
        ejectBase: config.ejectTime,
        drainTimeout: config.drainTimeout,
        logger: mappingLog,
      }),
    );
  }
  let stub: StubServer | undefined;
  const registrations: Registration[] = [];
  const deregister = async (): Promise<void> => {
    await Promise.all(registrations.map((r) => r.close()));
  };
  const close = async (reason?: string): Promise<void> => {
    // Deregister first (docs/architecture.md §4.6): no new client is sent here while we drain.
    await deregister();
    if (reason !== undefined) log.info('draining', { signal: reason, drainTimeout: config.drainTimeout });
    await Promise.all([...forwarders.map((f) => f.close()), stub?.close()]);
    await Promise.all(sources.map((s) => s.close()));
    await zone?.close();
    etcdClient?.close();
    if (reason !== undefined) log.info('stopped');
  };
  try {
    for (const forwarder of forwarders) await forwarder.start();
    if (config.dnsListen) {
      stub = createDnsStub(config, config.dnsListen, forwarders, clusterDns, systemResolvers, log, zone);
      try {
        await stub.start();
      } catch (err) {
        throw listenError(formatHostPort(config.dnsListen), err);
      }
      log.info('dns stub listening', {
        address: formatHostPort(stub.address()),
        clusterDomain: config.clusterDomain,
        clusterDns: clusterDns.map(formatHostPort),
        upstream: (config.upstream.length > 0 ? config.upstream : systemResolvers).map(formatHostPort),
      });
      if (config.writeResolvConf) writeStubResolvConf(config, resolvConf, stub.address(), log);
    }
  } catch (err) {
    await close();
    throw err;
  }
  // Discovery starts after the listeners: a cluster DNS or etcd that is down must not stop start-up.
  if (zone && etcdClient) {
    void openEtcdZone(etcdClient, config.prefix, log, stop).then((store) => {
      if (!store) return;
      zone.attach(store);
      // Push (docs/architecture.md §4.2): every change of the index reaches the forwarders at once.
      store.on('change', () => {
        for (const source of srvSources) source.refreshNow();
      });
      for (const source of srvSources) source.refreshNow();
    });
  }
  for (const source of sources) await source.start();
  if (options.beforeRegister) {
    try {
      await options.beforeRegister();
    } catch (err) {
      await close();
      throw err;
    }
  }
  for (const spec of options.registrations ?? []) {
    registrations.push(await startRegistration(etcdClient as Etcd3, spec, log));
  }
  const listeners = config.mappings.map((mapping, i) => ({
    address: (forwarders[i] as Forwarder).address(),
    service: mapping.service,
    srvName: mapping.srvName,
  }));
  for (const [i, listener] of listeners.entries()) {
    log.info('listening', {
      address: formatHostPort(listener.address),
      service: listener.service,
      srvName: listener.srvName,
      aliases: config.dnsListen ? (config.mappings[i] as Mapping).aliases : undefined,
      discovery: config.discovery,
    });
  }
  log.info('srvlink run ready', {
    domain: config.domain,
    listeners: listeners.map((l) => `${formatHostPort(l.address)}=${l.srvName}`),
    settings: {
      discovery: config.discovery,
      clusterDns: clusterDns.map(formatHostPort),
      connectTimeout: config.connectTimeout,
      idleTimeout: config.idleTimeout ?? 'off',
      maxConns: config.maxConns,
      ejectAfter: config.ejectAfter,
      ejectTime: config.ejectTime,
      drainTimeout: config.drainTimeout,
      ttlMin: config.ttlMin,
      ttlMax: config.ttlMax,
      staleMax: config.staleMax,
    },
  });
  return {
    listeners,
    deregister,
    close,
    status: () => ({ listeners, registrations: registrations.map((r) => ({ key: r.key, state: r.state })) }),
  };
}

/**
 * The container's DNS stub (docs/architecture.md §4.1): each mapping's aliases lead to
 * its listener, the cluster domain to the cluster DNS, the rest upstream.
 */
function createDnsStub(
  config: RunConfig,
  listen: HostPort,
  forwarders: readonly Forwarder[],
  clusterDns: HostPort[],
  systemResolvers: HostPort[],
  log: Logger,
  zone: LateZone | undefined,
): StubServer {
  const aliases = new Map<string, AliasAddresses>();
  config.mappings.forEach((mapping, i) => {
    const address = reachableAddress((forwarders[i] as Forwarder).address().host);
    for (const alias of mapping.aliases) aliases.set(alias, isIP(address) === 6 ? { ipv6: address } : { ipv4: address });
  });
  const upstream = config.upstream.length > 0 ? [...config.upstream] : systemResolvers;
  // One attempt per server: an app's resolver gives up after 5 s (glibc), so
  // the stub must answer (stale or SERVFAIL) well before that.
  const client = (servers: HostPort[], component: string): DnsClient | undefined =>
    servers.length > 0 ? new DnsClient({ servers, timeout: config.dnsTimeout, attempts: 1, logger: log.child({ component }) }) : undefined;
  const loopback = isLoopback(listen.host);
  return createStub({
    listen,
    aliases,
    clusterDomain: config.clusterDomain,
    // With etcd discovery the stub answers the cluster domain from the same index (docs/architecture.md §4.1).
    ...(zone ? { clusterZone: zone.handler(config.clusterDomain) } : {}),
    clusterResolver: client(clusterDns, 'stub-cluster'),
    upstreamResolver: client(upstream, 'stub-upstream'),
    // Never an open resolver: beyond loopback only the allowed networks are answered.
    ...(loopback ? {} : { allowFrom: config.allowFrom.length > 0 ? config.allowFrom : defaultAllowFrom() }),
    cacheSize: config.dnsCacheSize,
    staleMax: config.staleMax,
    logger: log.child({ component: 'dns-stub' }),
  });
}

/**
 * The etcd zone once it has loaded: a `ZoneStore` that is empty (and says
 * why it cannot vouch for that) until etcd first answers, so listeners and
 * the stub need not wait for etcd at start-up.
 */
class LateZone implements ZoneStore {
  readonly prefix: string;
  #store: EtcdZoneStore | undefined;

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  attach(store: EtcdZoneStore): void {
    this.#store = store;
  }

  get unavailable(): string | undefined {
    return this.#store ? this.#store.unavailable : 'the zone has not been read from etcd yet';
  }

  subtree(keyPrefix: string): readonly ZoneEntry[] {
    return this.#store?.subtree(keyPrefix) ?? [];
  }

  get(key: string): ZoneEntry | undefined {
    return this.#store?.get(key);
  }

  get malformed(): number {
    return this.#store?.malformed ?? 0;
  }

  /** Answers the cluster domain from the index once loaded; before that, passes names on (to the cluster DNS, if any). */
  handler(clusterDomain: string): DnsHandler {
    const zoneHandler = createZoneHandler({ zones: [clusterDomain], prefix: this.prefix, store: this });
    return {
      name: 'etcd-zone',
      handle: (request, next) => (this.#store ? zoneHandler.handle(request, next) : next()),
    };
  }

  async close(): Promise<void> {
    await this.#store?.close();
  }
}

/** Point resolv.conf at the stub, the environment as search domain, its options kept. */
function writeStubResolvConf(config: RunConfig, old: ResolvConf, stub: HostPort, log: Logger): void {
  const host = reachableAddress(stub.host);
  rewriteFileInPlace(config.resolvConf, stubResolvConf(old, host, [config.domain]));
  log.info('resolv.conf points at the stub', { file: config.resolvConf, nameserver: host, search: config.domain });
}

/** Nameservers other than the stub itself (docs/architecture.md §4.1: "never itself"). */
function withoutStub(servers: readonly HostPort[], stub: HostPort | undefined): HostPort[] {
  if (!stub) return [...servers];
  const wildcard = stub.host === '0.0.0.0' || stub.host === '::';
  return servers.filter((s) => s.port !== stub.port || !(s.host === stub.host || (wildcard && isLoopback(s.host))));
}

/** `_zookeeper._tcp.env1.skydns.local.` → `env1.skydns.local.` */
function environmentOf(srvName: string): string {
  return srvName.split('.').slice(2).join('.');
}

/** A listener on a wildcard address is reached through loopback. */
function reachableAddress(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

function isLoopback(host: string): boolean {
  return host.startsWith('127.') || host === '::1' || host === 'localhost';
}
