import { Command, Option } from 'commander';
import { DNS_SERVE_DEFAULTS, parseDnsServeConfig } from '../config/dns-serve-config.js';
import { listenError } from '../core/listen-error.js';
import { formatHostPort } from '../core/host-port.js';
import type { Logger } from '../core/logger.js';
import { createQueryCheckHandler } from '../dns/query-check.js';
import { DnsServer } from '../dns/server.js';
import { DEMO_RECORDS } from '../skydns/demo-records.js';
import { MemoryZoneStore } from '../skydns/memory-zone-store.js';
import { RecordsFileStore } from '../skydns/records-file-store.js';
import { createZoneHandler } from '../skydns/zone-handler.js';
import type { ZoneStore } from '../skydns/zone-store.js';
import { ExitCode, collect, commandLogger, optionSources, runGuarded, type CliIo } from './cli-context.js';

/** `srvlink dns`: SkyDNS / CoreDNS-etcd compatible authoritative server for the cluster domain. */
export function dnsCommand(io: CliIo, setExit: (code: number) => void): Command {
  return new Command('dns')
    .summary('serve the SkyDNS layout as DNS (SkyDNS / CoreDNS-etcd compatible)')
    .description(
      'Authoritative DNS server for the cluster domain, answering from the SkyDNS key layout\n' +
        'with the rules of CoreDNS\'s etcd plugin: SRV (with CoreDNS weights and A glue), A, AAAA,\n' +
        'CNAME, TXT, MX, SOA, NS; NXDOMAIN for missing names, NODATA with SOA for missing types.\n' +
        'Records come from --records (YAML or JSON: etcd key → record, re-read on change),\n' +
        'or from an embedded demo set when no source is given. Queries outside --zone: REFUSED.',
    )
    .addOption(new Option('--listen <addr:port>', 'UDP and TCP address to serve on (port 0: any free port)').env('SRVLINK_DNS_LISTEN').default(DNS_SERVE_DEFAULTS.listen))
    .addOption(new Option('--zone <domain>', `zone to answer for, repeatable (default: ${DNS_SERVE_DEFAULTS.zone})`).env('SRVLINK_ZONE').argParser(collect))
    .addOption(new Option('--prefix <path>', 'etcd key prefix of the layout').env('SRVLINK_PREFIX').default(DNS_SERVE_DEFAULTS.prefix))
    .addOption(new Option('--records <file>', 'YAML or JSON file of etcd key → record (default: embedded demo records)').env('SRVLINK_RECORDS'))
    .addHelpText(
      'after',
      `
Records file (YAML), one etcd key per record, the value as SkyDNS/CoreDNS read it:
  /skydns/local/skydns/env1/_tcp/_zookeeper/zk1: {host: 10.0.0.11, port: 31001}
  /skydns/local/skydns/env1/_tcp/_zookeeper/zk2: {host: 10.0.0.12, port: 31002, weight: 50}
  /skydns/local/skydns/env1/_tcp/_zookeeper/zk3: {host: 10.0.0.13, port: 31003, priority: 20}

Examples:
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
          const config = parseDnsServeConfig(cmd.opts(), optionSources(cmd));
          const log = commandLogger(io, cmd);
          let store: ZoneStore & { close?: () => Promise<void> };
          let source: string;
          if (config.records !== undefined) {
            const fileStore = new RecordsFileStore(config.records, { logger: log });
            await fileStore.start();
            store = fileStore;
            source = config.records;
          } else {
            store = MemoryZoneStore.fromValues(DEMO_RECORDS);
            source = 'embedded demo records';
          }
          const server = new DnsServer({
            listen: config.listen,
            handlers: [createQueryCheckHandler(), createZoneHandler({ zones: config.zones, prefix: config.prefix, store })],
            logger: log,
          });
          try {
            await server.start();
          } catch (err) {
            await store.close?.();
            throw listenError(formatHostPort(config.listen), err);
          }
          log.info('dns server listening', {
            address: formatHostPort(server.address()),
            zones: config.zones,
            prefix: config.prefix,
            records: source,
            malformed: store.malformed,
          });
          const signal = await stopSignal;
          await shutdown(log, signal, server, store);
          return ExitCode.OK;
        }),
      );
    });
}

async function shutdown(log: Logger, signal: string, server: DnsServer, store: { close?: () => Promise<void> }): Promise<void> {
  log.info('dns server stopping', { signal, ...server.stats });
  await server.close();
  await store.close?.();
}
