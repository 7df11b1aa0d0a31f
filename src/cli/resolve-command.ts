import { Command, Option } from 'commander';
import { parseResolveConfig, RESOLVE_DEFAULTS, type ResolveConfig } from '../config/resolve-config.js';
import { DnsQueryError } from '../core/errors.js';
import { formatHostPort, type HostPort } from '../core/host-port.js';
import { lookupSrv, type SrvLookup, type SrvTarget } from '../discovery/lookup-srv.js';
import { orderBackends } from '../discovery/order-backends.js';
import { DnsClient } from '../dns/client.js';
import { readResolvConf } from '../dns/resolv-conf.js';
import { ExitCode, collect, commandLogger, optionSources, runGuarded, type CliIo } from './cli-context.js';

/** What `srvlink resolve --json` prints. */
export interface ResolveReport {
  service: string;
  srvName: string;
  servers: string[];
  ttl: number;
  records: SrvTarget[];
  /** One example of the order `srvlink run` would dial in (RFC 2782: random within a priority). */
  failoverOrder: { target: string; address: string | null; port: number; priority: number; weight: number }[];
}

/** `srvlink resolve SERVICE`: what `run` would do for SERVICE. */
export function resolveCommand(io: CliIo, setExit: (code: number) => void): Command {
  const command = new Command('resolve')
    .summary('show the SRV records, addresses and failover order of a service')
    .description(
      'Resolve SERVICE through the cluster DNS the way `srvlink run` does: the SRV records, the address of each target (from the additional section by owner name, else A/AAAA queries) and an example RFC 2782 failover order.\n\n' +
        'SERVICE is NAME (_NAME._tcp.DOMAIN), NAME.ENV (_NAME._tcp.ENV.<parent of DOMAIN>) or a full SRV name (_NAME._tcp.env1.skydns.local).',
    )
    .argument('<service>', 'service to resolve: NAME, NAME.ENV or a full SRV name')
    .addOption(new Option('--domain <domain>', 'the environment short names resolve in, e.g. env1.skydns.local').env('SRVLINK_DOMAIN'))
    .addOption(
      new Option('--cluster-dns <ip[:port]>', 'cluster DNS server, repeatable (default: nameservers of /etc/resolv.conf)')
        .env('SRVLINK_CLUSTER_DNS')
        .argParser(collect),
    )
    .addOption(new Option('--timeout <duration>', 'per-query timeout, e.g. 500ms, 2s').env('SRVLINK_TIMEOUT').default(RESOLVE_DEFAULTS.timeout))
    .option('--json', 'print JSON instead of a table')
    .addHelpText(
      'after',
      `
Examples:
  srvlink resolve zookeeper --domain env1.skydns.local --cluster-dns 127.0.0.1:5353
  srvlink resolve postgres.env2 --domain env1.skydns.local
  srvlink resolve _demo._tcp.env1.skydns.local --cluster-dns 127.0.0.1:5353 --json

Exit codes: 0 found, 1 not found or no answer (NXDOMAIN, timeout, unreachable), 2 bad usage.`,
    )
    .action(async (service: string, _options: unknown, cmd: Command) => {
      setExit(
        await runGuarded(io, 'resolve', async () => {
          const config = parseResolveConfig(service, cmd.opts(), optionSources(cmd));
          const logger = commandLogger(io, cmd);
          const servers: HostPort[] = config.clusterDns.length > 0 ? [...config.clusterDns] : readResolvConf().nameservers;
          if (servers.length === 0) servers.push({ host: '127.0.0.1', port: 53 });
          const client = new DnsClient({ servers, timeout: config.timeout, logger });
          const result = await lookupSrv(client, config.srvName);
          const label = servers.map(formatHostPort).join(', ');
          if (result.status !== 'found') {
            const why = result.status === 'nxdomain' ? 'no such name (NXDOMAIN)' : 'the name has no SRV records (NODATA)';
            throw new DnsQueryError(result.status === 'nxdomain' ? 'ERR_DNS_NXDOMAIN' : 'ERR_DNS_NODATA', `cannot resolve "${config.srvName}" SRV via ${label}: ${why}`);
          }
          const report = buildReport(config, servers, result);
          io.stdout.write(config.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
          return ExitCode.OK;
        }),
      );
    });
  return command;
}

function buildReport(config: ResolveConfig, servers: HostPort[], result: SrvLookup): ResolveReport {
  return {
    service: config.service,
    srvName: result.name,
    servers: servers.map(formatHostPort),
    ttl: result.ttl,
    records: [...result.targets].sort((a, b) => a.priority - b.priority || b.weight - a.weight),
    failoverOrder: orderBackends(result.targets).map((t) => ({
      target: t.target,
      address: t.addresses[0] ?? null,
      port: t.port,
      priority: t.priority,
      weight: t.weight,
    })),
  };
}

/** The human-readable form: a header line, a table of records, the example order. */
export function formatReport(report: ResolveReport): string {
  const rows = [
    ['PRIORITY', 'WEIGHT', 'PORT', 'TARGET', 'ADDRESSES'],
    ...report.records.map((r) => [
      String(r.priority),
      String(r.weight),
      String(r.port),
      r.target,
      r.addresses.length > 0 ? `${r.addresses.join(', ')} (${r.addressSource === 'additional' ? 'additional section' : r.addressSource === 'lookup' ? 'A/AAAA query' : 'literal'})` : '(no address)',
    ]),
  ];
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((row) => (row[col] ?? '').length))) ?? [];
  const table = rows.map((row) => row.map((cell, col) => cell.padEnd(widths[col] ?? 0)).join('  ').trimEnd()).join('\n');
  const order = report.failoverOrder
    .map((b, i) => `  ${i + 1}. ${b.address === null ? `${b.target} (no address, skipped)` : `${formatHostPort({ host: b.address, port: b.port })}  ${b.target}`}`)
    .join('\n');
  return (
    `${report.srvName} via ${report.servers.join(', ')}: ${report.records.length} record(s), ttl ${report.ttl}s\n\n` +
    `${table}\n\n` +
    `example failover order (RFC 2782: priority ascending, weighted random within a priority):\n${order}\n`
  );
}
