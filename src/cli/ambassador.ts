import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EtcdConfig } from '../config/etcd-config.js';
import type { RegisterConfig } from '../config/register-config.js';
import type { EtcdGateway } from '../registry/etcd-gateway.js';
import { RESTART_SETTINGS, mappingKey, planReload } from '../config/reload-plan.js';
import type { Mapping } from '../config/parse-mappings.js';
import type { RunConfig } from '../config/run-config.js';
import { abortable } from '../core/abort.js';
import { ConfigError, SrvlinkError, errorMessage } from '../core/errors.js';
import { formatHostPort, type HostPort } from '../core/host-port.js';
import { listenError } from '../core/listen-error.js';
import type { Logger } from '../core/logger.js';
import type { BackendSource } from '../discovery/backend-source.js';
import { DnsBackendSource } from '../discovery/dns-backend-source.js';
import type { Resolver } from '../discovery/lookup-srv.js';
import { SwappableBackendSource } from '../discovery/swappable-backend-source.js';
import { StaticBackendSource } from '../discovery/static-backend-source.js';
import { DnsClient } from '../dns/client.js';
import type { DnsMessage } from '../dns/codec.js';
import { STUB_RESOLV_CONF_HEADER, originalText, parseResolvConf, readResolvConfText, rewriteFileInPlace, stubResolvConf, type ResolvConf } from '../dns/resolv-conf.js';
import { Forwarder, type ConnectionRecord, type ForwarderSettings } from '../proxy/forwarder.js';
import type { DataPlane } from '../proxy/data-plane.js';
import { openDataPlane } from '../proxy/native-data-plane.js';
import { openNativeUdp, type NativeUdpAddon } from '../dns/native-udp.js';
import { loadNativeAddon, type SpliceStats } from '../core/native-addon.js';
import type { Registration, RegistrationState } from '../registry/registration.js';
import type { EtcdZoneStore } from '../skydns/etcd-zone-store.js';
import { LateZone } from '../skydns/late-zone.js';
import { createZoneResolver } from '../skydns/zone-resolver.js';
import type { AliasAddresses } from '../stub/alias-handler.js';
import { LOOPBACK_NETWORKS, defaultAllowFrom } from '../stub/allow-from.js';
import { createStub, type StubServer } from '../stub/create-stub.js';
import type { DnsResolver } from '../stub/forward-handler.js';
import type { AccessLog } from '../admin/access-log.js';
import type { AdminMetrics } from '../admin/admin-metrics.js';
import type { AdminServer } from '../admin/admin-server.js';
import type { ChildSnapshot, NativePlaneSnapshot } from '../admin/admin-source.js';
import { createAdminMetrics, dnsListenerSnapshot, mappingSnapshot, startAdminServer, stubSnapshot, watchRegistration, zoneSnapshot } from './admin-runtime.js';
import { createEtcdClient, createRegistryClient } from './etcd-client.js';

type EtcdRuntime = typeof import('./etcd-runtime.js');

/** A listener of a running ambassador. */
export interface AmbassadorListener {
  address: HostPort;
  service: string;
  srvName: string;
}

/** What a reload did, for logs and tests. */
export interface ReloadResult {
  /** `address=srvName` of the listeners started, stopped, and kept with their connections. */
  added: string[];
  removed: string[];
  kept: number;
  /** Mappings of the new config that could not listen (the rest was applied); they are tried again on the next reload. */
  failed: string[];
  /** Config keys whose change waits for a restart; their running values stay. */
  restartNeeded: string[];
}

/** What a reload is given besides the run settings. */
export interface ReloadOptions {
  etcd?: EtcdConfig | undefined;
  registrations?: readonly RegisterConfig[];
}

/** A running ambassador: what `srvlink run` starts. */
export interface Ambassador {
  /** Each listener's bound address, in mapping order (as of the last reload). */
  readonly listeners: readonly AmbassadorListener[];
  /**
   * Apply a new config without dropping a connection on mappings that stay:
   * removed mappings stop accepting and drain, added ones listen, kept
   * forwarders take changed settings, backends are re-resolved. Settings
   * that need a restart keep their running value (`restartNeeded`).
   */
  reload(config: RunConfig, options?: ReloadOptions): Promise<ReloadResult>;
  /** Withdraw every registration (revoke its lease), so no new client is sent here; listeners keep serving; safe to call twice. */
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
  /** The admin endpoint's address (`--admin`); undefined: none. Read at start only. */
  admin?: HostPort | undefined;
  /** Where closed connections are logged (`--access-log`), opened by the caller. */
  accessLog?: AccessLog | undefined;
  /** The supervised child for `/status`, once the supervisor runs one. */
  child?: () => ChildSnapshot | undefined;
}

/** One mapping at work: its forwarder and the source it asks, which a reload may swap. */
interface Route {
  mapping: Mapping;
  forwarder: Forwarder;
  source: SwappableBackendSource;
}

/**
 * Wire the parts of `srvlink run` together (the composition root: features
 * do not import each other). Listeners come up first, all or none: when one
 * cannot bind, those already started are closed and the error is thrown.
 */
export async function startAmbassador(config: RunConfig, options: AmbassadorOptions): Promise<Ambassador> {
  const log = options.logger;
  const { dataPlane, nativeUdp, nativePlaneStats } = chooseNativeParts(config, options.env ?? {}, log);
  // Metrics observed where decisions are made: only with an admin endpoint to show them.
  const metrics = options.admin ? await createAdminMetrics() : undefined;
  // Read once, before anything could rewrite it: the container's resolvers
  // are the default cluster DNS and upstreams, never the stub itself. A file
  // srvlink wrote before (a container restart) gives the original it keeps.
  const resolvConfText = originalText(readResolvConfText(config.resolvConf));
  const resolvConf = parseResolvConf(resolvConfText);
  let resolvConfWritten = false;
  const systemResolvers = withoutStub(resolvConf.nameservers, config.dnsListen);
  const clusterDnsOf = (c: RunConfig): HostPort[] => (c.clusterDns.length > 0 ? [...c.clusterDns] : systemResolvers);
  const clusterClientOf = (c: RunConfig): DnsClient | undefined => {
    const servers = clusterDnsOf(c);
    if (c.discovery !== 'dns') return undefined;
    if (servers.length === 0) throw new ConfigError(`missing --cluster-dns: ${c.resolvConf} names no nameserver other than the stub itself to find services with`);
    return new DnsClient({ servers, timeout: c.dnsTimeout, logger: log.child({ component: 'dns-client' }), ...exchangeObserver(metrics, 'discovery') });
  };
  let running = config;
  let clusterClient = clusterClientOf(config);

  const stop = options.stop ?? new AbortController().signal;
  // etcd3 (gRPC) for the zone's watch only; registrations talk to etcd's JSON gateway, which
  // connects on first use: a `srvlink run --register` without etcd discovery loads no gRPC.
  const etcdClient = options.etcd && config.discovery === 'etcd' ? await createEtcdClient(options.etcd, options.env ?? {}) : undefined;
  const registryClient = options.etcd ? createRegistryClient(options.etcd, options.env ?? {}) : undefined;
  const etcdRuntime = registryClient ? await import('./etcd-runtime.js') : undefined;
  const zone = config.discovery === 'etcd' ? new LateZone(config.prefix) : undefined;
  const zoneOpener = zone && etcdClient ? await import('../skydns/open-etcd-zone.js') : undefined;
  // Every mapped service's environment is answered from etcd, the cluster domain or not.
  const zoneResolverOf = (c: RunConfig): Resolver | undefined =>
    zone
      ? zone.gate(
          createZoneResolver({
            zones: [c.clusterDomain, ...c.mappings.map((m) => environmentOf(m.srvName))],
            prefix: c.prefix,
            store: zone,
            unavailable: () => zone.unavailable,
          }),
        )
      : undefined;
  let zoneResolver = zoneResolverOf(config);
  const sourceFor = (mapping: Mapping, c: RunConfig): BackendSource => {
    if (c.discovery === 'static') return new StaticBackendSource({ name: mapping.srvName, backends: c.backends.get(mapping.srvName) ?? [] });
    // etcd: the same lookupSrv over the in-memory zone, with the rules of `srvlink dns`; asked again on every watch event.
    return new DnsBackendSource({
      srvName: mapping.srvName,
      resolver: zoneResolver ?? (clusterClient as DnsClient),
      ttlMin: c.ttlMin,
      ttlMax: c.ttlMax,
      staleMax: c.staleMax,
      logger: log.child({ service: mapping.srvName }),
      discovery: c.discovery,
    });
  };
  const routeFor = (mapping: Mapping, c: RunConfig): Route => {
    const source = new SwappableBackendSource(sourceFor(mapping, c));
    const forwarder = new Forwarder({
      name: mapping.srvName,
      listen: mapping.listen,
      source,
      ...forwarderSettings(c),
      dataPlane,
      logger: log.child({ service: mapping.srvName }),
      observer: {
        dialed: (_backend, ok, ms) => {
          if (ok) metrics?.observeDial(mapping.srvName, ms);
        },
        // Only with an access log: a `closed` hook makes the forwarder read each client's address.
        ...(options.accessLog ? { closed: (record: ConnectionRecord) => options.accessLog?.write({ mapping: mapping.srvName, ...record }) } : {}),
      },
    });
    return { mapping, forwarder, source };
  };
  let routes: Route[] = config.mappings.map((mapping) => routeFor(mapping, config));
  /** Sources that ask DNS or the etcd zone, to re-ask at once on a reload or an etcd change. */
  const srvSources = (): DnsBackendSource[] => routes.flatMap((r) => (r.source.inner instanceof DnsBackendSource ? [r.source.inner] : []));

  let stub: StubServer | undefined;
  // The stub's resolvers by indirection: a reload may point them elsewhere without a new stub.
  let stubResolvers = stubResolversOf(config, clusterDnsOf(config), systemResolvers, log, metrics);
  let registrations: { config: RegisterConfig; registration: Registration }[] = [];
  /** Registrations asked for and not started yet (start-up, reload). */
  let pendingRegistrations: RegisterConfig[] = [...(options.registrations ?? [])];
  let closing: Promise<void> | undefined;
  let admin: AdminServer | undefined;
  let etcdStore: EtcdZoneStore | undefined;
  /** What `/status` shows of each registration, by registration. */
  const registrationStatus = new WeakMap<Registration, ReturnType<typeof watchRegistration>>();
  const deregister = async (): Promise<void> => {
    const withdrawn = registrations;
    registrations = [];
    await Promise.all(withdrawn.map((r) => r.registration.close()));
  };
  /** Forwarders stopped by a reload, still draining: close() waits for them too. */
  const draining = new Set<Promise<void>>();
  const close = (reason?: string): Promise<void> => {
    closing ??= (async () => {
      // Deregister first (docs/architecture.md §4.6): no new client is sent here while we drain.
      await deregister();
      if (reason !== undefined) log.info('draining', { signal: reason, drainTimeout: running.drainTimeout });
      await Promise.all([...routes.map((r) => r.forwarder.close()), stub?.close(), ...draining]);
      await Promise.all(routes.map((r) => r.source.close()));
      await zone?.close();
      etcdClient?.close();
      registryClient?.close();
      if (resolvConfWritten) restoreResolvConf(config.resolvConf, resolvConfText, log);
      await admin?.close();
      if (reason !== undefined) log.info('stopped');
    })();
    return closing;
  };
  try {
    for (const route of routes) await route.forwarder.start();
    if (config.dnsListen) {
      stub = createDnsStub(config, config.dnsListen, aliasTable(routes), stubResolvers, log, zone, metrics, nativeUdp);
      try {
        await stub.start();
      } catch (err) {
        throw listenError(formatHostPort(config.dnsListen), err);
      }
      log.info('dns stub listening', {
        address: formatHostPort(stub.address()),
        clusterDomain: config.clusterDomain,
        // With etcd discovery the cluster DNS only stands in until the zone is read, and only when named.
        ...(config.discovery === 'dns' || config.clusterDns.length > 0 ? { clusterDns: clusterDnsOf(config).map(formatHostPort) } : {}),
        upstream: upstreamOf(config, systemResolvers).map(formatHostPort),
      });
      if (upstreamOf(config, systemResolvers).length === 0) {
        // Otherwise silent: every name outside the cluster domain would be REFUSED (and counted).
        log.warn('no upstream dns: names outside the cluster domain will be refused', {
          resolvConf: config.resolvConf,
          reason: `${config.resolvConf} names no nameserver other than the stub itself`,
          fix: 'give --upstream HOST[:PORT]',
        });
      }
      if (config.writeResolvConf) {
        writeStubResolvConf(config, resolvConf, resolvConfText, stub.address(), log);
        resolvConfWritten = true;
      }
    }
    if (options.admin && metrics) {
      const dnsListen = config.dnsListen;
      admin = await startAdminServer(
        options.admin,
        {
          snapshot: async ({ probe = false } = {}) => ({
            command: 'run',
            pid: process.pid,
            uptime: process.uptime(),
            mappings: await Promise.all(
              routes.map((r) =>
                mappingSnapshot({
                  listen: r.mapping.listen,
                  service: r.mapping.service,
                  srvName: r.mapping.srvName,
                  discovery: running.discovery,
                  forwarder: r.forwarder,
                  source: r.source,
                  refresh: r.source.inner instanceof DnsBackendSource ? r.source.inner.state() : undefined,
                }),
              ),
            ),
            dnsListeners: stub && dnsListen ? [dnsListenerSnapshot('stub', stub, dnsListen)] : [],
            stub: stub ? await stubSnapshot(stub, metrics, probe) : undefined,
            zone: zone ? zoneSnapshot(config.prefix, etcdStore) : undefined,
            // A registration not started yet is not in place either.
            registrations: [
              ...registrations.map((r) => registrationStatus.get(r.registration)?.() ?? { key: r.registration.key, state: r.registration.state, renewals: 0 }),
              ...pendingRegistrations.map((spec) => ({ key: spec.key, state: 'idle', renewals: 0 })),
            ],
            child: options.child?.(),
            nativePlane: nativePlaneStats?.(),
          }),
        },
        metrics,
        log,
      );
    }
  } catch (err) {
    await close();
    throw err;
  }
  // Discovery starts after the listeners: a cluster DNS or etcd that is down must not stop start-up.
  if (zone && etcdClient && zoneOpener) {
    void zoneOpener.openEtcdZone(etcdClient, config.prefix, log, stop, () => zone.failed()).then((store) => {
      if (!store) return;
      etcdStore = store;
      zone.attach(store);
      // Push (docs/architecture.md §4.2): every change of the index reaches the forwarders at once.
      store.on('change', () => {
        for (const source of srvSources()) source.refreshNow();
      });
      for (const source of srvSources()) source.refreshNow();
    });
  }
  for (const route of routes) await route.source.start();
  // Ready once every mapping has its first answer (or its first failure):
  // connections that came meanwhile waited for it (docs/architecture.md §4.2).
  const first = new Map(
    await abortable(
      Promise.all(
        routes.map(async (route) => {
          const found = await route.source.current().then(
            (set) => `${set.backends.length} backend${set.backends.length === 1 ? '' : 's'}`,
            (err: unknown) => errorMessage(err),
          );
          return [route, found] as const;
        }),
      ),
      stop,
    ).catch(() => []),
  );
  if (options.beforeRegister) {
    try {
      await options.beforeRegister();
    } catch (err) {
      await close();
      throw err;
    }
  }
  const register = async (specs: readonly RegisterConfig[]): Promise<void> => {
    pendingRegistrations = [...specs];
    for (const spec of specs) {
      const registration = await (etcdRuntime as EtcdRuntime).startRegistration(registryClient as EtcdGateway, spec, log);
      registrationStatus.set(registration, watchRegistration(registration));
      registrations.push({ config: spec, registration });
      pendingRegistrations = pendingRegistrations.filter((pending) => pending !== spec);
    }
  };
  await register(options.registrations ?? []);
  const listenersOf = (): AmbassadorListener[] =>
    routes.map((r) => ({ address: r.forwarder.address(), service: r.mapping.service, srvName: r.mapping.srvName }));
  const logListening = (route: Route, c: RunConfig): void => {
    log.info('listening', {
      address: formatHostPort(route.forwarder.address()),
      service: route.mapping.service,
      srvName: route.mapping.srvName,
      aliases: c.dnsListen ? route.mapping.aliases : undefined,
      discovery: c.discovery,
      ...(first.has(route) ? { backends: first.get(route) } : {}),
    });
  };
  for (const route of routes) logListening(route, config);
  log.info('srvlink run ready', {
    domain: config.domain,
    listeners: listenersOf().map((l) => `${formatHostPort(l.address)}=${l.srvName}`),
    settings: {
      discovery: config.discovery,
      // Only what applies to the discovery in use.
      ...(config.discovery === 'dns' ? { clusterDns: clusterDnsOf(config).map(formatHostPort), dnsTimeout: config.dnsTimeout } : {}),
      ...(config.discovery === 'etcd' ? { etcd: options.etcd?.endpoints, prefix: config.prefix } : {}),
      connectTimeout: config.connectTimeout,
      dialDeadline: config.dialDeadline,
      idleTimeout: config.idleTimeout ?? 'off',
      maxConns: config.maxConns,
      ejectAfter: config.ejectAfter,
      ejectTime: config.ejectTime,
      drainTimeout: config.drainTimeout,
      dataPlane: dataPlane.name,
      ...(stub ? { dnsFastPath: stub.nativeUdp === undefined ? 'js' : 'native' } : {}),
      ...(config.discovery === 'static' ? {} : { ttlMin: config.ttlMin, ttlMax: config.ttlMax, staleMax: config.staleMax }),
    },
  });

  let reloading: Promise<unknown> = Promise.resolve();
  const reload = async (next: RunConfig, reloadOptions: ReloadOptions = {}): Promise<ReloadResult> => {
    const plan = planReload(running, next);
    const restartNeeded = [...plan.restartNeeded];
    if (JSON.stringify(reloadOptions.etcd) !== JSON.stringify(options.etcd)) restartNeeded.push('etcd');
    // What a restart-only setting says stays as it runs; the rest is the new config.
    const applied: RunConfig = Object.freeze({
      ...next,
      ...Object.fromEntries(RESTART_SETTINGS.map(({ field }) => [field, running[field]])),
      discovery: restartNeeded.includes('discovery') ? running.discovery : next.discovery,
    });
    if (plan.discovery) {
      clusterClient = clusterClientOf(applied);
    }
    zoneResolver = zoneResolverOf(applied);
    const result: ReloadResult = { added: [], removed: [], kept: plan.kept.length, failed: [], restartNeeded };

    // Stop the removed first: an added mapping may take over the same address.
    const removedKeys = new Set(plan.removed.map(mappingKey));
    for (const route of routes.filter((r) => removedKeys.has(mappingKey(r.mapping)))) {
      result.removed.push(`${formatHostPort(route.forwarder.address())}=${route.mapping.srvName}`);
      const drained = route.forwarder.close().then(() => route.source.close());
      draining.add(drained);
      void drained.finally(() => draining.delete(drained));
    }
    const keptRoutes = new Map(routes.filter((r) => !removedKeys.has(mappingKey(r.mapping))).map((r) => [mappingKey(r.mapping), r]));
    for (const { after } of plan.kept) {
      const route = keptRoutes.get(mappingKey(after)) as Route;
      route.mapping = after;
      if (plan.forwarderSettings) route.forwarder.reconfigure(forwarderSettings(applied));
      if (plan.discovery) await route.source.swap(sourceFor(after, applied));
    }
    const added: Route[] = [];
    for (const mapping of plan.added) {
      let route = routeFor(mapping, applied);
      try {
        // A mapping that takes over the address of one just removed may find its socket still closing.
        for (let attempt = 1; ; attempt++) {
          try {
            await route.forwarder.start();
            break;
          } catch (err) {
            if (attempt >= 10 || !addressInUse(err)) throw err;
            await route.forwarder.close();
            await sleep(50);
            route = routeFor(mapping, applied);
          }
        }
      } catch (err) {
        log.error('cannot listen for a mapping of the reloaded config', { mapping: `${formatHostPort(mapping.listen)}=${mapping.service}`, error: errorMessage(err) });
        result.failed.push(`${formatHostPort(mapping.listen)}=${mapping.srvName}`);
        await route.forwarder.close();
        continue;
      }
      await route.source.start();
      added.push(route);
      result.added.push(`${formatHostPort(route.forwarder.address())}=${mapping.srvName}`);
      logListening(route, applied);
    }
    // The new config's order, kept routes and added ones.
    const byKey = new Map([...keptRoutes, ...added.map((r) => [mappingKey(r.mapping), r] as const)]);
    routes = next.mappings.flatMap((m) => {
      const route = byKey.get(mappingKey(m));
      return route ? [route] : [];
    });
    // Backends re-resolved: a reload is also how to say "look again now".
    if (!plan.discovery) for (const source of srvSources()) source.refreshNow();
    if (stub) {
      stub.setAliases(aliasTable(routes));
      if (plan.resolvers) {
        const resolvers = stubResolversOf(applied, clusterDnsOf(applied), systemResolvers, log, metrics);
        for (const which of ['cluster', 'upstream'] as const) {
          if ((stubResolvers[which] === undefined) !== (resolvers[which] === undefined)) restartNeeded.push(which === 'cluster' ? 'cluster-dns' : 'upstream');
        }
        stubResolvers.cluster?.use(resolvers.cluster);
        stubResolvers.upstream?.use(resolvers.upstream);
        stubResolvers = { cluster: stubResolvers.cluster, upstream: stubResolvers.upstream };
      }
    }
    await reloadRegistrations(reloadOptions.registrations ?? [], restartNeeded);
    running = Object.freeze({ ...applied, mappings: routes.map((r) => r.mapping) });
    return result;
  };
  const reloadRegistrations = async (wanted: readonly RegisterConfig[], restartNeeded: string[]): Promise<void> => {
    const keyOf = (c: RegisterConfig): string => JSON.stringify(c);
    const wantedKeys = new Set(wanted.map(keyOf));
    const runningKeys = new Set(registrations.map((r) => keyOf(r.config)));
    if (wanted.some((c) => !runningKeys.has(keyOf(c))) && !registryClient) {
      restartNeeded.push('register');
      return;
    }
    const gone = registrations.filter((r) => !wantedKeys.has(keyOf(r.config)));
    registrations = registrations.filter((r) => wantedKeys.has(keyOf(r.config)));
    await Promise.all(gone.map((r) => r.registration.close()));
    await register(wanted.filter((c) => !runningKeys.has(keyOf(c))));
  };

  return {
    get listeners() {
      return listenersOf();
    },
    // One reload at a time: a file saved twice in a row applies in order.
    reload: (next, reloadOptions) => {
      const result = reloading.then(() => reload(next, reloadOptions));
      reloading = result.catch(() => undefined);
      return result;
    },
    deregister,
    close,
    status: () => ({ listeners: listenersOf(), registrations: registrations.map((r) => ({ key: r.registration.key, state: r.registration.state })) }),
  };
}

/** The forwarder settings of a config. */
/**
 * The data plane of every mapping and the stub's UDP fast path, chosen once
 * (restart settings): `auto` takes the native one when the addon loads and
 * says in one line when it does not (one line for both when both miss it);
 * `native` without it is an error.
 */
function chooseNativeParts(
  config: RunConfig,
  env: NodeJS.ProcessEnv,
  log: Logger,
): { dataPlane: DataPlane; nativeUdp: NativeUdpAddon | undefined; nativePlaneStats: (() => NativePlaneSnapshot) | undefined } {
  const { plane, unavailable } = openDataPlane(config.dataPlane, () => loadNativeAddon(env));
  if (unavailable !== undefined && config.dataPlane === 'native') throw new ConfigError(`invalid --data-plane "native": ${unavailable}`);
  const udp = config.dnsListen === undefined ? { addon: undefined } : openNativeUdp(config.dnsFastPath, () => loadNativeAddon(env));
  if (udp.unavailable !== undefined && config.dnsFastPath === 'native') throw new ConfigError(`invalid --dns-fast-path "native": ${udp.unavailable}`);
  if (unavailable !== undefined) {
    log.warn('forwarding on the JS data plane: the native one is not available', {
      reason: unavailable,
      ...(udp.unavailable === undefined ? {} : { dnsFastPath: 'js' }),
    });
  } else if (udp.unavailable !== undefined) {
    log.warn('dns udp queries answered on the JS path: the native fast path is not available', { reason: udp.unavailable });
  }
  const spliceStats = unavailable === undefined ? loadNativeAddon(env).addon?.spliceStats : undefined;
  const nativePlaneStats = spliceStats && plane.name === 'native' ? (): NativePlaneSnapshot => nativePlaneSnapshot(spliceStats()) : undefined;
  return { dataPlane: plane, nativeUdp: udp.addon, nativePlaneStats };
}

function nativePlaneSnapshot(stats: SpliceStats): NativePlaneSnapshot {
  return { pairs: stats.pairs, pipesOpen: stats.pipesOpen, maxPipes: stats.maxPipes, pipeBytes: stats.pipeBytes, copiedBytes: stats.copiedBytes };
}

function forwarderSettings(c: RunConfig): ForwarderSettings {
  return {
    connectTimeout: c.connectTimeout,
    dialDeadline: c.dialDeadline,
    idleTimeout: c.idleTimeout,
    maxConnections: c.maxConns,
    ejectAfter: c.ejectAfter,
    ejectBase: c.ejectTime,
    drainTimeout: c.drainTimeout,
  };
}

/** Whether a listen failed because the address is still held (by a socket that is closing). */
function addressInUse(err: unknown): boolean {
  return err instanceof SrvlinkError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
}

/**
 * Each route's aliases → its listener's address, for the stub. A listener
 * on a wildcard address stays one: the stub answers each client with the
 * local address it reached (a sidecar's clients are in other containers).
 */
function aliasTable(routes: readonly Route[]): Map<string, AliasAddresses> {
  const aliases = new Map<string, AliasAddresses>();
  for (const route of routes) {
    const address = route.forwarder.address().host;
    for (const alias of route.mapping.aliases) aliases.set(alias, isIP(address) === 6 ? { ipv6: address } : { ipv4: address });
  }
  return aliases;
}

function upstreamOf(config: RunConfig, systemResolvers: HostPort[]): HostPort[] {
  return config.upstream.length > 0 ? [...config.upstream] : systemResolvers;
}

/** A resolver that stands for another, replaceable one. */
class ResolverSlot implements DnsResolver {
  #target: DnsResolver;
  constructor(target: DnsResolver) {
    this.#target = target;
  }
  use(target: DnsResolver | undefined): void {
    if (target) this.#target = target;
  }
  exchange(query: DnsMessage, options?: { signal?: AbortSignal }): Promise<DnsMessage> {
    return this.#target.exchange(query, options);
  }
}

interface StubResolvers {
  cluster: ResolverSlot | undefined;
  upstream: ResolverSlot | undefined;
}

/** The stub's two resolvers for a config. One attempt per server: an app's resolver gives up after 5 s (glibc), so the stub must answer (stale or SERVFAIL) well before that. */
function stubResolversOf(config: RunConfig, clusterDns: HostPort[], systemResolvers: HostPort[], log: Logger, metrics: AdminMetrics | undefined): StubResolvers {
  const client = (servers: HostPort[], component: string): ResolverSlot | undefined =>
    servers.length > 0
      ? new ResolverSlot(
          new DnsClient({ servers, timeout: config.dnsTimeout, attempts: 1, logger: log.child({ component }), ...exchangeObserver(metrics, component.replace('stub-', '')) }),
        )
      : undefined;
  return { cluster: client(clusterDns, 'stub-cluster'), upstream: client(upstreamOf(config, systemResolvers), 'stub-upstream') };
}

/**
 * The container's DNS stub (docs/architecture.md §4.1): each mapping's aliases lead to
 * its listener, the cluster domain to the cluster DNS, the rest upstream.
 */
function createDnsStub(
  config: RunConfig,
  listen: HostPort,
  aliases: ReadonlyMap<string, AliasAddresses>,
  resolvers: StubResolvers,
  log: Logger,
  zone: LateZone | undefined,
  metrics: AdminMetrics | undefined,
  nativeUdp: NativeUdpAddon | undefined,
): StubServer {
  const loopback = isLoopback(listen.host);
  return createStub({
    listen,
    aliases,
    clusterDomain: config.clusterDomain,
    // With etcd discovery the stub answers the cluster domain from the same index (docs/architecture.md §4.1).
    ...(zone ? { clusterZone: zone.handler(config.clusterDomain) } : {}),
    clusterResolver: resolvers.cluster,
    upstreamResolver: resolvers.upstream,
    // Never an open resolver: beyond loopback only the allowed networks are answered, and the container itself.
    ...(loopback ? {} : { allowFrom: config.allowFrom.length > 0 ? [...LOOPBACK_NETWORKS, ...config.allowFrom] : defaultAllowFrom() }),
    cacheSize: config.dnsCacheSize,
    staleMax: config.staleMax,
    logger: log.child({ component: 'dns-stub' }),
    server: {
      ...(metrics ? { onReply: (type: string | undefined, rcode: number, count?: number) => metrics.observeDnsReply('stub', type, rcode, count) } : {}),
      // On the event loop: the app connects through this process right after it resolves, and the loop that accepts is awake then; a thread of its own would be woken for every query.
      ...(nativeUdp === undefined ? {} : { nativeUdp, nativeUdpReader: 'loop' as const }),
    },
  });
}

/** A DNS client's `onExchange` option feeding `metrics` under `role` (cluster, upstream, discovery); none without metrics. */
function exchangeObserver(metrics: AdminMetrics | undefined, role: string): { onExchange?: (server: string, outcome: string, ms: number) => void } {
  return metrics ? { onExchange: (server, outcome, ms) => metrics.observeExchange(role, server, outcome, ms) } : {};
}

/** Point resolv.conf at the stub, the environment as search domain, its options kept, the original in comments. */
function writeStubResolvConf(config: RunConfig, old: ResolvConf, original: string, stub: HostPort, log: Logger): void {
  const host = reachableAddress(stub.host);
  rewriteFileInPlace(config.resolvConf, stubResolvConf(old, host, [config.domain], original));
  log.info('resolv.conf points at the stub', { file: config.resolvConf, nameserver: host, search: config.domain, upstream: old.nameservers.map(formatHostPort) });
}

/** Put the container's resolv.conf back as it was, unless someone else rewrote it meanwhile. */
function restoreResolvConf(path: string, original: string, log: Logger): void {
  const now = readResolvConfText(path);
  if (!now.startsWith(STUB_RESOLV_CONF_HEADER)) {
    log.warn('resolv.conf was changed by someone else: left as it is', { file: path });
    return;
  }
  try {
    rewriteFileInPlace(path, original);
    log.info('resolv.conf restored', { file: path });
  } catch (err) {
    log.warn('cannot restore resolv.conf', { file: path, error: errorMessage(err) });
  }
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
