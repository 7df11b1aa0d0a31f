import { Command, Option } from 'commander';
import { DNS_SERVE_DEFAULTS, parseDnsServeConfig } from '../config/dns-serve-config.js';
import type { Etcd3 } from 'etcd3';
import { parseEtcdConfig } from '../config/etcd-config.js';
import { ConfigError } from '../core/errors.js';
import { listenError } from '../core/listen-error.js';
import { formatHostPort } from '../core/host-port.js';
import type { Logger } from '../core/logger.js';
import { createQueryCheckHandler } from '../dns/query-check.js';
import { Refusals } from '../dns/refusals.js';
import { openNativeUdp } from '../dns/native-udp.js';
import { DnsServer } from '../dns/server.js';
import { loadNativeAddon } from '../core/native-addon.js';
import { DEMO_RECORDS } from '../skydns/demo-records.js';
import { MemoryZoneStore } from '../skydns/memory-zone-store.js';
import { createZoneHandler } from '../skydns/zone-handler.js';
import { createZoneReplyCache } from '../skydns/zone-reply-cache.js';
import type { ZoneStore } from '../skydns/zone-store.js';
import type { AdminServer } from '../admin/admin-server.js';
import { EtcdZoneStore } from '../skydns/etcd-zone-store.js';
import { openAdminSettings, withAdminOptions } from './admin-options.js';
import { createAdminMetrics, dnsListenerSnapshot, startAdminServer, zoneSnapshot } from './admin-runtime.js';
import { ExitCode, collect, commandLogger, logFormat, optionSources, runGuarded, type CliIo } from './cli-context.js';
import { createEtcdClient, withEtcdOptions } from './etcd-client.js';

/** `srvlink dns`: SkyDNS / CoreDNS-etcd compatible authoritative server for the cluster domain. */
export function dnsCommand(io: CliIo, setExit: (code: number) => void): Command {
  const command = new Command('dns');
  withAdminOptions(withEtcdOptions(command, 'serve the layout from etcd (client URLs, repeatable or comma-separated)'), undefined);
  return command
    .summary('serve the SkyDNS layout as DNS (SkyDNS / CoreDNS-etcd compatible)')
    .description(
      'Authoritative DNS server for the cluster domain, answering from the SkyDNS key layout with the rules of CoreDNS\'s etcd plugin: SRV (with CoreDNS weights and A glue), A, AAAA, CNAME, TXT, MX, SOA, NS; NXDOMAIN for missing names, NODATA with SOA for missing types. Records come from etcd (--etcd: one range read, then a watch keeps an in-memory index current; lease TTLs respected), from --records (YAML or JSON: etcd key → record, re-read on change), or from an embedded demo set when no source is given. Queries outside --zone: REFUSED.',
    )
    .addOption(new Option('--listen <addr:port>', 'UDP and TCP address to serve on (port 0: any free port)').env('SRVLINK_DNS_LISTEN').default(DNS_SERVE_DEFAULTS.listen))
    .addOption(new Option('--zone <domain>', `zone to answer for, repeatable (default: ${DNS_SERVE_DEFAULTS.zone})`).env('SRVLINK_ZONE').argParser(collect))
    .addOption(new Option('--prefix <path>', 'etcd key prefix of the layout').env('SRVLINK_PREFIX').default(DNS_SERVE_DEFAULTS.prefix))
    .addOption(new Option('--records <file>', 'YAML or JSON file of etcd key → record (default: embedded demo records)').env('SRVLINK_RECORDS'))
    .addOption(
      new Option(
        '--dns-fast-path <path>',
        "who reads UDP queries: native (a thread of the native addon answers cached replies itself), js (Node's socket on the event loop) or auto (native when the addon loads)",
      )
        .env('SRVLINK_DNS_FAST_PATH')
        .default(DNS_SERVE_DEFAULTS.dnsFastPath),
    )
    .addHelpText(
      'after',
      `
Records file (YAML), one etcd key per record, the value as SkyDNS/CoreDNS read it:
  /skydns/local/skydns/env1/_tcp/_zookeeper/zk1: {host: 10.0.0.11, port: 31001}
  /skydns/local/skydns/env1/_tcp/_zookeeper/zk2: {host: 10.0.0.12, port: 31002, weight: 50}
  /skydns/local/skydns/env1/_tcp/_zookeeper/zk3: {host: 10.0.0.13, port: 31003, priority: 20}

Examples:
  srvlink dns --listen 0.0.0.0:53 --etcd http://10.0.0.5:2379,http://10.0.0.6:2379
  srvlink dns --listen 127.0.0.1:5353 --records records.yaml
  dig @127.0.0.1 -p 5353 _zookeeper._tcp.env1.skydns.local SRV
  srvlink dns --listen 127.0.0.1:0          # embedded demo records, any free port

Stops on SIGTERM or SIGINT. Exit codes: 0 stopped by a signal, 1 cannot serve (e.g. port taken), 2 bad usage.`,
    )
    .action(async (_options: unknown, cmd: Command) => {
      setExit(
        await runGuarded(io, 'dns', async () => {
          // Listen for signals before anything starts: a SIGTERM during start-up must still drain.
          const stopSignal = io.waitForSignal(['SIGTERM', 'SIGINT']);
          const sources = optionSources(cmd);
          const config = parseDnsServeConfig(cmd.opts(), sources);
          const etcdConfig = parseEtcdConfig(cmd.opts(), sources, false);
          if (etcdConfig && config.records !== undefined) throw new ConfigError('invalid --records with --etcd: give one source of records');
          const log = commandLogger(io, cmd);
          const opts = cmd.opts() as { admin?: string; accessLog?: string };
          const adminSettings = await openAdminSettings(
            io,
            { admin: sources.admin && { value: opts.admin, source: sources.admin }, accessLog: undefined },
            logFormat(cmd),
            log,
          );
          const metrics = adminSettings.admin ? await createAdminMetrics() : undefined;
          let store: ZoneStore & { close?: () => Promise<void> };
          let source: string;
          let client: Etcd3 | undefined;
          if (etcdConfig) {
            client = await createEtcdClient(etcdConfig, io.env);
            const { openEtcdZone } = await import('../skydns/open-etcd-zone.js');
            const stopped = new AbortController();
            void stopSignal.then(() => stopped.abort());
            const etcdStore = await openEtcdZone(client, config.prefix, log, stopped.signal);
            if (!etcdStore) {
              client.close();
              return ExitCode.OK;
            }
            store = etcdStore;
            source = `etcd ${etcdConfig.endpoints.join(',')}`;
          } else if (config.records !== undefined) {
            // The YAML parser is loaded only for a records file.
            const { RecordsFileStore } = await import('../skydns/records-file-store.js');
            const fileStore = new RecordsFileStore(config.records, { logger: log });
            await fileStore.start();
            store = fileStore;
            source = config.records;
          } else {
            store = MemoryZoneStore.fromValues(DEMO_RECORDS);
            source = 'embedded demo records';
          }
          const fastPath = openNativeUdp(config.dnsFastPath, () => loadNativeAddon(io.env));
          if (fastPath.unavailable !== undefined) {
            if (config.dnsFastPath === 'native') throw new ConfigError(`invalid --dns-fast-path "native": ${fastPath.unavailable}`);
            log.warn('dns udp queries answered on the JS path: the native fast path is not available', { reason: fastPath.unavailable });
          }
          const refusals = new Refusals(log);
          const zoneHandler = createZoneHandler({ zones: config.zones, prefix: config.prefix, store });
          const server = new DnsServer({
            listen: config.listen,
            handlers: [createQueryCheckHandler({ refusals }), zoneHandler],
            // A repeated question is answered from the encoded reply while the zone is unchanged.
            replyCache: createZoneReplyCache(zoneHandler),
            ...(fastPath.addon === undefined ? {} : { nativeUdp: fastPath.addon }),
            // Names outside --zone: REFUSED, counted, the first one logged.
            fallback: (request) => Promise.resolve(refusals.refuse(request, 'outsideZone')),
            logger: log,
            ...(metrics ? { onReply: (type: string | undefined, rcode: number, count?: number) => metrics.observeDnsReply('dns', type, rcode, count) } : {}),
          });
          let admin: AdminServer | undefined;
          try {
            await server.start();
          } catch (err) {
            await store.close?.();
            client?.close();
            throw listenError(formatHostPort(config.listen), err);
          }
          if (adminSettings.admin && metrics) {
            const zone = store instanceof EtcdZoneStore ? store : undefined;
            try {
              admin = await startAdminServer(
                adminSettings.admin,
                {
                  snapshot: () =>
                    Promise.resolve({
                      command: 'dns',
                      pid: process.pid,
                      uptime: process.uptime(),
                      mappings: [],
                      dnsListeners: [dnsListenerSnapshot('dns', server, config.listen)],
                      zone: zone ? zoneSnapshot(config.prefix, zone) : undefined,
                      registrations: [],
                    }),
                },
                metrics,
                log,
              );
            } catch (err) {
              await server.close();
              await store.close?.();
              client?.close();
              throw err;
            }
          }
          log.info('dns server listening', {
            address: formatHostPort(server.address()),
            zones: config.zones,
            prefix: config.prefix,
            records: source,
            malformed: store.malformed,
            dnsFastPath: server.nativeUdp === undefined ? 'js' : 'native',
          });
          const signal = await stopSignal;
          await shutdown(log, signal, server, store, refusals);
          client?.close();
          await admin?.close();
          return ExitCode.OK;
        }),
      );
    });
}

async function shutdown(log: Logger, signal: string, server: DnsServer, store: { close?: () => Promise<void> }, refusals: Refusals): Promise<void> {
  log.info('dns server stopping', { signal, ...server.stats, refused: refusals.counts });
  await server.close();
  await store.close?.();
}
