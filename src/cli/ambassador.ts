import type { RunConfig } from '../config/run-config.js';
import { formatHostPort, type HostPort } from '../core/host-port.js';
import type { Logger } from '../core/logger.js';
import type { BackendSource } from '../discovery/backend-source.js';
import { DnsBackendSource } from '../discovery/dns-backend-source.js';
import { StaticBackendSource } from '../discovery/static-backend-source.js';
import { DnsClient } from '../dns/client.js';
import { readResolvConf } from '../dns/resolv-conf.js';
import { Forwarder } from '../proxy/forwarder.js';

/** A running ambassador: what `srvlink run` starts. */
export interface Ambassador {
  /** Each listener's bound address, in mapping order. */
  readonly listeners: readonly { address: HostPort; service: string; srvName: string }[];
  /** Stop accepting, drain open connections, stop discovery. */
  close(reason?: string): Promise<void>;
}

export interface AmbassadorOptions {
  logger: Logger;
  /** Cluster DNS when the config names none (default: /etc/resolv.conf's nameservers). */
  systemResolvers?: () => HostPort[];
}

/**
 * Wire the parts of `srvlink run` together (the composition root: features
 * do not import each other). Listeners come up first, all or none: when one
 * cannot bind, those already started are closed and the error is thrown.
 */
export async function startAmbassador(config: RunConfig, options: AmbassadorOptions): Promise<Ambassador> {
  const log = options.logger;
  const sources: BackendSource[] = [];
  const forwarders: Forwarder[] = [];
  let client: DnsClient | undefined;
  if (config.discovery === 'dns') {
    const servers = config.clusterDns.length > 0 ? [...config.clusterDns] : (options.systemResolvers ?? (() => readResolvConf().nameservers))();
    if (servers.length === 0) servers.push({ host: '127.0.0.1', port: 53 });
    client = new DnsClient({ servers, timeout: config.dnsTimeout, logger: log.child({ component: 'dns-client' }) });
  }
  for (const mapping of config.mappings) {
    const mappingLog = log.child({ service: mapping.srvName });
    const source: BackendSource = client
      ? new DnsBackendSource({
          srvName: mapping.srvName,
          resolver: client,
          ttlMin: config.ttlMin,
          ttlMax: config.ttlMax,
          staleMax: config.staleMax,
          logger: mappingLog,
        })
      : new StaticBackendSource({ name: mapping.srvName, backends: config.backends.get(mapping.srvName) ?? [] });
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
  const close = async (reason?: string): Promise<void> => {
    if (reason !== undefined) log.info('draining', { signal: reason, drainTimeout: config.drainTimeout });
    await Promise.all(forwarders.map((f) => f.close()));
    await Promise.all(sources.map((s) => s.close()));
    if (reason !== undefined) log.info('stopped');
  };
  try {
    for (const forwarder of forwarders) await forwarder.start();
  } catch (err) {
    await close();
    throw err;
  }
  // Discovery starts after the listeners: a cluster DNS that is down must not stop start-up.
  for (const source of sources) await source.start();
  const listeners = config.mappings.map((mapping, i) => ({
    address: (forwarders[i] as Forwarder).address(),
    service: mapping.service,
    srvName: mapping.srvName,
  }));
  for (const listener of listeners) {
    log.info('listening', { address: formatHostPort(listener.address), service: listener.service, srvName: listener.srvName, discovery: config.discovery });
  }
  log.info('srvlink run ready', {
    domain: config.domain,
    listeners: listeners.map((l) => `${formatHostPort(l.address)}=${l.srvName}`),
    settings: {
      discovery: config.discovery,
      clusterDns: client ? config.clusterDns.map(formatHostPort) : undefined,
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
  return { listeners, close };
}
