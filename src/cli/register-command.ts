import { hostname } from 'node:os';
import { Command } from 'commander';
import { parseEtcdConfig } from '../config/etcd-config.js';
import { parseZone, parsePrefix } from '../config/dns-serve-config.js';
import { describeSource, flagName } from '../config/option-source.js';
import { REGISTER_DEFAULTS, parseRegisterConfig, type RegisterSpec } from '../config/register-config.js';
import { ConfigError } from '../core/errors.js';
import { defaultHost } from '../registry/default-host.js';
import { openAdminSettings, withAdminOptions } from './admin-options.js';
import { createAdminMetrics, startAdminServer, watchRegistration } from './admin-runtime.js';
import { ExitCode, commandLogger, envOption, logFormat, optionSources, runGuarded, type CliIo } from './cli-context.js';
import { createRegistryClient, withEtcdOptions } from './etcd-client.js';

/** `srvlink register`: the registration sidekick alone (docs/architecture.md §4.4). */
export function registerCommand(io: CliIo, setExit: (code: number) => void): Command {
  const command = new Command('register')
    .summary('register a service instance in etcd (SkyDNS layout), kept alive and health-gated')
    .description(
      'Write /skydns/<reversed domain>/_tcp/_<service>/<instance> = {host, port, priority, weight, ttl} under an etcd lease of --ttl seconds, kept alive. With --check the key exists only while the check passes (--rise passes in a row to add it, --fall failures to remove it). If etcd is unreachable past the lease, the key is registered again as soon as etcd answers. SIGTERM or SIGINT revoke the lease: the key is gone at once.',
    );
  withAdminOptions(withEtcdOptions(command), undefined)
    .addOption(envOption('--domain <domain>', "the instance's environment, e.g. env1.skydns.local (required)", 'SRVLINK_DOMAIN'))
    .addOption(envOption('--service <name>', 'service name, e.g. zookeeper (required)', 'SRVLINK_SERVICE'))
    .addOption(envOption('--host <host>', 'address to publish; $VAR allowed (default: first non-loopback IPv4)', 'SRVLINK_HOST'))
    .addOption(envOption('--port <port>', 'port to publish; $VAR allowed, e.g. \'$PORT0\' (required)', 'SRVLINK_PORT'))
    .addOption(envOption('--priority <n>', 'SRV priority, lower is tried first', 'SRVLINK_PRIORITY').default(REGISTER_DEFAULTS.priority))
    .addOption(envOption('--weight <n>', 'SRV weight within a priority', 'SRVLINK_WEIGHT').default(REGISTER_DEFAULTS.weight))
    .addOption(envOption('--ttl <seconds>', 'lease (and record) TTL', 'SRVLINK_TTL').default(REGISTER_DEFAULTS.ttl))
    .addOption(envOption('--instance <id>', 'instance id, a DNS label (default: from host name and port)', 'SRVLINK_INSTANCE'))
    .addOption(
      envOption(
        '--check <spec>',
        'health check: tcp://HOST:PORT, zookeeper://HOST:PORT, redis://HOST:PORT[?password-file=FILE], postgres://HOST:PORT, http[s]://HOST[:PORT]/PATH or exec:CMD',
        'SRVLINK_CHECK',
      ),
    )
    .addOption(envOption('--check-send <bytes>', "tcp:// check: what to write once connected; escapes \\n \\r \\t \\0 \\\\ \\xHH", 'SRVLINK_CHECK_SEND'))
    .addOption(envOption('--check-expect <regex|statuses>', 'tcp:// check: a regular expression the answer must match; http(s)://: accepted statuses (default 200-399)', 'SRVLINK_CHECK_EXPECT'))
    .addOption(envOption('--check-interval <duration>', 'time between checks', 'SRVLINK_CHECK_INTERVAL').default(REGISTER_DEFAULTS.checkInterval))
    .addOption(envOption('--check-timeout <duration>', 'time one check may take', 'SRVLINK_CHECK_TIMEOUT').default(REGISTER_DEFAULTS.checkTimeout))
    .addOption(envOption('--rise <n>', 'passes in a row that register the instance', 'SRVLINK_RISE').default(REGISTER_DEFAULTS.rise))
    .addOption(envOption('--fall <n>', 'failures in a row that deregister it', 'SRVLINK_FALL').default(REGISTER_DEFAULTS.fall))
    .addOption(envOption('--prefix <path>', 'etcd key prefix of the layout', 'SRVLINK_PREFIX').default(REGISTER_DEFAULTS.prefix))
    .addHelpText(
      'after',
      `
Examples:
  srvlink register --etcd http://10.0.0.5:2379 --domain env1.skydns.local --service zookeeper --port 2181 \\
                   --check zookeeper://127.0.0.1:2181
  srvlink register ... --service redis --port 6379 --check 'redis://127.0.0.1:6379?password-file=/run/secrets/redis'
  srvlink register ... --service smtp --port 25 --check tcp://127.0.0.1:25 --check-expect '^220 '
  srvlink register ... --service zookeeper --port 2181 --check tcp://127.0.0.1:2181 \\
                   --check-send 'srvr' --check-expect '^Mode: (leader|follower|standalone)'
  srvlink register --etcd http://10.0.0.5:2379,http://10.0.0.6:2379 --domain env1.skydns.local \\
                   --service web --host '$HOST_IP' --port '$PORT0' --check http://127.0.0.1:8080/health

The check timeout covers the whole exchange (connect, send, answer): a frozen server fails it.
A server is removed within --check-interval × --fall + --check-timeout of its last good answer.
zookeeper:// sends the srvr four-letter word and passes in a serving mode only (leader,
follower, observer, standalone): a server without a quorum fails it. Nothing to configure on
the server: srvr is the one word ZooKeeper 3.5.3+ answers by default (4lw.commands.whitelist
defaults to srvr, and 3.8 answers it whatever the list says).

Exit codes: 0 stopped by SIGTERM/SIGINT (key removed), 1 runtime failure, 2 bad usage.`,
    )
    .action(async (_options: unknown, cmd: Command) => {
      setExit(
        await runGuarded(io, 'register', async () => {
          const stopSignal = io.waitForSignal(['SIGTERM', 'SIGINT']);
          const opts = cmd.opts() as RegisterSpec & { domain?: string; prefix: string; etcd?: string[]; admin?: string };
          const sources = optionSources(cmd);
          const what = (field: string): string => describeSource(sources[field] ?? { flag: `--${flagName(field)}`, from: 'cli' });
          const etcdConfig = parseEtcdConfig(cmd.opts(), sources);
          if (opts.domain === undefined) throw new ConfigError(`missing ${what('domain')}: the environment, e.g. --domain env1.skydns.local`);
          const config = parseRegisterConfig(opts, {
            domain: parseZone(opts.domain, what('domain')),
            prefix: parsePrefix(opts.prefix, what('prefix')),
            env: io.env,
            hostname: hostname(),
            defaultHost: () => defaultHost(),
            what,
          });
          const log = commandLogger(io, cmd);
          const adminSettings = await openAdminSettings(io, { admin: sources.admin && { value: opts.admin, source: sources.admin } }, logFormat(cmd), log);
          const client = createRegistryClient(etcdConfig as NonNullable<typeof etcdConfig>, io.env);
          let status: (() => ReturnType<ReturnType<typeof watchRegistration>>) | undefined;
          const metrics = adminSettings.admin ? await createAdminMetrics() : undefined;
          // Up before the registration: /readyz says 503 until the key is in place.
          const admin =
            adminSettings.admin && metrics
              ? await startAdminServer(
                  adminSettings.admin,
                  {
                    snapshot: () =>
                      Promise.resolve({
                        command: 'register',
                        pid: process.pid,
                        uptime: process.uptime(),
                        mappings: [],
                        dnsListeners: [],
                        registrations: [status?.() ?? { key: config.key, state: 'idle', renewals: 0 }],
                      }),
                  },
                  metrics,
                  log,
                ).catch((err: unknown) => {
                  client.close();
                  throw err;
                })
              : undefined;
          try {
            const { startRegistration } = await import('./etcd-runtime.js');
            const registration = await startRegistration(client, config, log);
            status = watchRegistration(registration);
            // "registered" is logged by the registration once the key is in place; until then, say what it waits for.
            if (registration.state === 'waiting-for-etcd') log.info('not registered yet: waiting for etcd, the key is put as soon as it answers', { key: config.key });
            else if (registration.state === 'unhealthy') log.info('not registered yet: waiting for the health check to pass', { key: config.key });
            const signal = await stopSignal;
            log.info('deregistering', { signal, key: config.key });
            await registration.close();
          } finally {
            client.close();
            await admin?.close();
          }
          return ExitCode.OK;
        }),
      );
    });
  return command;
}
