import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { parseJsonConfigFile } from '../config/json-config-file.js';
import { configFileKeys, layerSettings, type LayeredValue } from '../config/layer-settings.js';
import { describeSource, flagName } from '../config/option-source.js';
import { RELOAD_SIGNALS, RUN_DEFAULTS, parseRunConfig, type RunConfig, type RunSetting } from '../config/run-config.js';
import { ConfigError, errorMessage } from '../core/errors.js';
import { hostname } from 'node:os';
import { parseEtcdConfig, type EtcdConfig } from '../config/etcd-config.js';
import { parseRegisterConfig, type RegisterConfig } from '../config/register-config.js';
import type { Logger } from '../core/logger.js';
import { watchFile } from '../core/watch-file.js';
import { defaultHost } from '../registry/default-host.js';
import { parseDuration } from '../core/duration.js';
import { startAmbassador, type Ambassador } from './ambassador.js';
import { superviseCommand, type SupervisedRun } from './supervise-command.js';
import { withEtcdOptions } from './etcd-client.js';
import { openAdminSettings, withAdminOptions } from './admin-options.js';
import { ExitCode, collect, commandLogger, envOption, logFormat, logLevel, optionSources, runGuarded, type CliIo } from './cli-context.js';

/** `srvlink run`: the ambassador. */
export function runCommand(io: CliIo, setExit: (code: number) => void): Command {
  const command = new Command('run')
    .summary('forward local ports to the backends of SRV services (the ambassador)')
    .description(
      'Listen on local TCP ports and forward each connection to a backend of the mapped service, found through DNS SRV records: lower priority first, weighted random within a priority (RFC 2782), the next backend when one does not answer. Backend sets are cached for their TTL (clamped to --ttl-min/--ttl-max) and refreshed in the background; when the cluster DNS fails, the last good set stays in use up to --stale-max. SIGTERM or SIGINT: stop accepting, let open connections finish (up to --drain-timeout), exit 0.',
    )
    .addOption(envOption('--config <file>', 'YAML or JSON file of settings; keys are the long flag names', 'SRVLINK_CONFIG'))
    .addOption(envOption('--domain <domain>', "this container's environment, e.g. env1.skydns.local (required)", 'SRVLINK_DOMAIN'))
    .addOption(
      envOption('--map <[addr:]port=service>', 'forward a local port to a service, repeatable: 2181=zookeeper, 5432=postgres.env2', 'SRVLINK_MAP').argParser(collect),
    )
    .addOption(envOption('--listen <addr>', 'address for mappings given without one', 'SRVLINK_LISTEN').default(RUN_DEFAULTS.listen))
    .addOption(
      envOption('--cluster-dns <ip[:port]>', 'cluster DNS server, repeatable (default: nameservers of /etc/resolv.conf)', 'SRVLINK_CLUSTER_DNS').argParser(collect),
    )
    .addOption(
      envOption('--discovery <kind>', 'where backends come from: dns (SRV via --cluster-dns), etcd (watch, --etcd) or static (--backend)', 'SRVLINK_DISCOVERY').default(
        RUN_DEFAULTS.discovery,
      ),
    )
    .addOption(envOption('--backend <service=host:port,...>', 'static backends of a service, repeatable', 'SRVLINK_BACKEND').argParser(collect))
    .addOption(envOption('--connect-timeout <duration>', 'give up dialing a backend after this long', 'SRVLINK_CONNECT_TIMEOUT').default(RUN_DEFAULTS.connectTimeout))
    .addOption(
      envOption(
        '--dial-deadline <duration>',
        'longest a client waits for a backend, all failovers included (one dial still gets at most --connect-timeout); then it is closed',
        'SRVLINK_DIAL_DEADLINE',
      ).default(RUN_DEFAULTS.dialDeadline),
    )
    .addOption(envOption('--idle-timeout <duration>', 'close a connection idle this long (off: never)', 'SRVLINK_IDLE_TIMEOUT').default(RUN_DEFAULTS.idleTimeout))
    .addOption(envOption('--max-conns <n>', 'open connections per mapping; more are closed at once', 'SRVLINK_MAX_CONNS').default(RUN_DEFAULTS.maxConns))
    .addOption(envOption('--eject-after <n>', 'connect failures in a row that eject a backend', 'SRVLINK_EJECT_AFTER').default(RUN_DEFAULTS.ejectAfter))
    .addOption(envOption('--eject-time <duration>', 'first ejection; when it runs out one connection probes the backend, its failure ejects it again for twice as long', 'SRVLINK_EJECT_TIME').default(RUN_DEFAULTS.ejectTime))
    .addOption(envOption('--drain-timeout <duration>', 'on SIGTERM, how long open connections may finish', 'SRVLINK_DRAIN_TIMEOUT').default(RUN_DEFAULTS.drainTimeout))
    .addOption(
      envOption(
        '--data-plane <plane>',
        'what moves forwarded bytes: native (splice(2) on a thread of the native addon), js (the event loop) or auto (native when the addon loads)',
        'SRVLINK_DATA_PLANE',
      ).default(RUN_DEFAULTS.dataPlane),
    )
    .addOption(envOption('--ttl-min <duration>', 'shortest time a backend set is cached', 'SRVLINK_TTL_MIN').default(RUN_DEFAULTS.ttlMin))
    .addOption(envOption('--ttl-max <duration>', 'longest time a backend set is cached', 'SRVLINK_TTL_MAX').default(RUN_DEFAULTS.ttlMax))
    .addOption(envOption('--stale-max <duration>', 'how long the last good set is used while refreshing fails', 'SRVLINK_STALE_MAX').default(RUN_DEFAULTS.staleMax))
    .addOption(envOption('--dns-timeout <duration>', 'per-query timeout towards the cluster DNS and upstreams', 'SRVLINK_DNS_TIMEOUT').default(RUN_DEFAULTS.dnsTimeout))
    .addOption(envOption('--dns-listen <addr[:port]|none>', "the container's DNS stub (UDP and TCP); none: no stub", 'SRVLINK_DNS_LISTEN').default(RUN_DEFAULTS.dnsListen))
    .addOption(envOption('--cluster-domain <domain>', 'names sent to the cluster DNS (default: the parent of --domain)', 'SRVLINK_CLUSTER_DOMAIN'))
    .addOption(
      envOption('--upstream <ip[:port]>', 'resolver for all other names, repeatable (default: nameservers of resolv.conf at start)', 'SRVLINK_UPSTREAM').argParser(collect),
    )
    .addOption(envOption('--write-resolv-conf', 'point resolv.conf at the stub (search: --domain), keeping its options', 'SRVLINK_WRITE_RESOLV_CONF'))
    .addOption(envOption('--resolv-conf <file>', 'resolv.conf to read upstreams from (and to rewrite)', 'SRVLINK_RESOLV_CONF').default(RUN_DEFAULTS.resolvConf))
    .addOption(envOption('--dns-cache-size <n>', 'answers the stub keeps (positive and negative)', 'SRVLINK_DNS_CACHE_SIZE').default(RUN_DEFAULTS.dnsCacheSize))
    .addOption(
      envOption(
        '--dns-fast-path <path>',
        "who reads the stub's UDP queries: native (native code on the event loop answers cached replies itself, no JavaScript), js (Node's socket) or auto (native when the addon loads)",
        'SRVLINK_DNS_FAST_PATH',
      ).default(RUN_DEFAULTS.dnsFastPath),
    )
    .addOption(
      envOption('--register <name:port[:key=value...]>', "register this container's service in etcd, repeatable; keys: host, priority, weight, ttl, instance, check, check-send, check-expect, check-interval, check-timeout, rise, fall (see srvlink register --help)", 'SRVLINK_REGISTER').argParser(collect),
    )
    .addOption(envOption('--prefix <path>', 'etcd key prefix of the SkyDNS layout (etcd discovery, --register)', 'SRVLINK_PREFIX').default(RUN_DEFAULTS.prefix))
    .addOption(
      envOption(
        '--reload-signal <signal>',
        `signal that reloads --config: ${RELOAD_SIGNALS.join(', ')} (default: SIGHUP, or none when a command is supervised: its signals are the child's)`,
        'SRVLINK_RELOAD_SIGNAL',
      ),
    )
    .addOption(
      envOption('--allow-from <cidr>', 'networks the stub answers when bound beyond loopback, besides loopback itself, repeatable (default: own private networks)', 'SRVLINK_ALLOW_FROM').argParser(
        collect,
      ),
    )
    .addOption(envOption('--stop-timeout <duration>', 'with a command: on SIGTERM, how long it may take to exit before SIGKILL', 'SRVLINK_STOP_TIMEOUT').default('10s'))
    .addOption(envOption('--signal-group', "with a command: forward signals to the command's whole process group", 'SRVLINK_SIGNAL_GROUP'))
    .addOption(envOption('--subreaper', 'reap orphaned zombies even when not PID 1 (PR_SET_CHILD_SUBREAPER)', 'SRVLINK_SUBREAPER'))
    .argument('[command...]', 'run this command under srvlink (after --), as a container entrypoint does')
    .passThroughOptions()
    .addHelpText(
      'after',
      `
Examples:
  srvlink run --domain env1.skydns.local --cluster-dns 10.0.0.2 --map 2181=zookeeper
  srvlink run --config /etc/srvlink.yaml -- java -jar app.jar                # PID 1 of a container
  srvlink run --domain env1.skydns.local --map 2181=zookeeper --map 5432=postgres.env2
  srvlink run --domain env1.skydns.local --map 2181=zookeeper \
              --listen 0.0.0.0 --dns-listen 0.0.0.0:53 --allow-from 172.17.0.0/16   # sidecar
  srvlink run --domain env1.skydns.local --discovery static \\
              --map 2181=zookeeper --backend zookeeper=10.0.0.11:31001,10.0.0.12:31002
  SRVLINK_MAP=2181=zookeeper,5432=postgres SRVLINK_DOMAIN=env1.skydns.local srvlink run
  srvlink run --domain env1.skydns.local --map 2181=zookeeper --write-resolv-conf   # in a container

Config file (--config), the same settings by their flag names:
  domain: env1.skydns.local
  cluster-dns: [10.0.0.2]
  map:
    - "2181=zookeeper"
    - {listen: "127.0.0.2:2181", service: zookeeper.env2, aliases: [zk-legacy]}
  connect-timeout: 1s

Precedence: flags, then SRVLINK_* variables, then the config file, then defaults.
The config file is watched: a change (or the reload signal) applies it without dropping
connections on mappings that stay; a file that fails validation is refused and logged, and the
running config stays. README.md lists every key and which ones need a restart.
Two mappings on one port without an address get 127.0.0.1, 127.0.0.2, ... (all loopback).
The DNS stub answers each mapping's names (zookeeper, zookeeper.env1.skydns.local) with its
listener's address (a listener on 0.0.0.0: the address each client reached the stub at), sends the cluster domain to --cluster-dns and the rest to --upstream.
Port 0 in a mapping picks a free port; the "listening" log line says which.
With a command (after --): listeners and the stub come up first, then the command starts in
its own process group with srvlink's environment and stdio, then registrations. SIGTERM, SIGINT,
SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH are forwarded to it every time. On SIGTERM:
deregister, forward, wait up to --stop-timeout (then SIGKILL), drain, exit with its status. When
it exits on its own: deregister, drain, exit with its code (128 + signal number if killed).
As PID 1 (or with --subreaper) srvlink reaps orphaned zombies (native addon).
Exit codes: 0 stopped by SIGTERM/SIGINT, 1 cannot start (e.g. a port is taken), 2 bad usage;
with a command, the command's status, 127 command not found, 126 not executable.`,
    )
    .action(async (commandLine: string[], _options: unknown, cmd: Command) => {
      setExit(
        await runGuarded(io, 'run', async () => {
          // Listen for signals before anything starts: a SIGTERM during start-up must still drain.
          const stopSignal = io.waitForSignal(['SIGTERM', 'SIGINT']);
          const settings = await loadRunSettings(cmd, io);
          const log = commandLogger(io, cmd, settings.layered);
          const stopping = new AbortController();
          void stopSignal.then(() => stopping.abort());
          const { layered } = settings;
          const adminSettings = await openAdminSettings(io, { admin: layered.admin, accessLog: layered.accessLog }, logFormat(cmd, settings.layered), log, {
            signalsBelongToCommand: commandLine.length > 0,
          });
          const supervised: SupervisedRun | undefined =
            commandLine.length > 0 || layered.subreaper?.value === true
              ? superviseCommand(commandLine, {
                  env: io.env,
                  logger: log,
                  stopTimeout: parseDuration(String(layered.stopTimeout?.value ?? '10s'), '--stop-timeout'),
                  signalGroup: layered.signalGroup?.value === true,
                  subreaper: layered.subreaper?.value === true,
                  // --reload-signal claims its signal: it reloads srvlink instead of reaching the command.
                  keep: settings.config.reloadSignal === undefined ? [] : [settings.config.reloadSignal],
                })
              : undefined;
          const starting = startAmbassador(settings.config, {
            logger: log,
            etcd: settings.etcd,
            registrations: settings.registrations,
            env: io.env,
            stop: stopping.signal,
            admin: adminSettings.admin,
            accessLog: adminSettings.accessLog,
            ...(supervised ? { child: () => supervised.child() } : {}),
            ...(supervised ? { beforeRegister: () => supervised.start(stopping.signal) } : {}),
          });
          // Before start-up ends: a reload signal sent as soon as "ready" is logged must not kill the process.
          const reloader = startReloader(cmd, io, log, starting, settings, commandLine.length > 0);
          let ambassador: Ambassador;
          try {
            ambassador = await starting;
          } catch (err) {
            reloader.close();
            supervised?.close();
            await adminSettings.close();
            const status = supervised?.failure(err);
            if (status === undefined) throw err;
            return status;
          }
          if (supervised?.running) {
            const status = await supervised.wait(stopSignal, ambassador);
            reloader.close();
            await adminSettings.close();
            return status;
          }
          const signal = await stopSignal;
          reloader.close();
          await ambassador.close(signal);
          supervised?.close();
          await adminSettings.close();
          return ExitCode.OK;
        }),
      );
    });
  return withAdminOptions(withEtcdOptions(command, 'etcd client URLs for --discovery etcd and --register'), '127.0.0.1:9053', true);
}

/** Settings read once for the whole process (the logger, the supervisor): a change waits for a restart. */
const PROCESS_SETTINGS = ['logLevel', 'logFormat', 'stopTimeout', 'signalGroup', 'subreaper'];

/** Everything `run` needs, from flags, environment and the config file: what a reload reads again. */
interface RunSettings {
  config: RunConfig;
  etcd: EtcdConfig | undefined;
  registrations: RegisterConfig[];
  /** Every setting as layered (flags, environment, file), for the settings read outside `RunConfig`. */
  layered: Record<string, LayeredValue>;
  /** The config file's text, undefined without --config. */
  text: string | undefined;
}

/**
 * Read and validate the settings of `run`: the config file (if any) under
 * the flags and variables commander saw. Throws `ConfigError` naming the
 * file and key, or the flag, that is wrong.
 */
async function loadRunSettings(cmd: Command, io: CliIo): Promise<RunSettings> {
  const file = (cmd.opts() as { config?: string }).config;
  const sources = optionSources(cmd);
  let fromFile: Record<string, unknown> = {};
  let text: string | undefined;
  if (file !== undefined) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file "${file}": ${errorMessage(err)}`);
    }
    // The YAML parser is loaded only for a config file that is not plain JSON.
    const keys = configFileKeys(cmd.options.map((o) => o.long));
    fromFile = parseJsonConfigFile(text, file, keys) ?? (await import('../config/config-file.js')).parseConfigFile(text, file, keys);
  }
  const layered = layerSettings(cmd.opts(), sources, fromFile, file, flagName);
  const config = parseRunConfig(layered as Partial<Record<RunSetting, (typeof layered)[string]>>);
  const etcd = parseEtcdConfig(
    Object.fromEntries(Object.entries(layered).map(([key, { value }]) => [key, value])),
    Object.fromEntries(Object.entries(layered).map(([key, { source }]) => [key, source])),
    config.discovery === 'etcd' || config.register.length > 0,
  );
  const registerSource = layered.register?.source ?? { flag: '--register', from: 'cli' as const };
  const registrations = config.register.map((spec) =>
    parseRegisterConfig(spec, {
      domain: config.domain,
      prefix: config.prefix,
      env: io.env,
      hostname: hostname(),
      defaultHost: () => defaultHost(),
      what: (field) =>
        field === 'domain'
          ? describeSource(layered.domain?.source ?? { flag: '--domain', from: 'cli' })
          : `${describeSource(registerSource)} "${spec.service ?? ''}:${spec.port ?? ''}" ${flagName(field)}`,
    }),
  );
  // Checked on every read, so that a reload with a bad value is refused like any other.
  logLevel(cmd, layered);
  logFormat(cmd, layered);
  return { config, etcd, registrations, layered, text };
}

/**
 * Live reload (docs/architecture.md §4.6): the config file is watched, and
 * the reload signal (SIGHUP unless a command is supervised, or
 * `--reload-signal`) reads it again too; without a file, the signal still
 * re-resolves every backend. A file that fails validation is refused with
 * one log line naming the key; the running config stays.
 */
function startReloader(cmd: Command, io: CliIo, log: Logger, starting: Promise<Ambassador>, initial: RunSettings, supervised: boolean): { close(): void } {
  const file = (cmd.opts() as { config?: string }).config;
  let applied = initial;
  let lastText = initial.text;
  // Reloads wait for start-up, and run one at a time.
  let queue: Promise<unknown> = starting.catch(() => undefined);
  const reload = async (trigger: string): Promise<void> => {
    const ambassador = await starting;
    let next: RunSettings;
    try {
      next = await loadRunSettings(cmd, io);
    } catch (err) {
      const message = errorMessage(err);
      // A file watch fires on every save: say it once per broken text.
      const text = file === undefined ? undefined : readOrUndefined(file);
      if (trigger === 'file' && text !== undefined && text === lastText) return;
      lastText = text;
      log.error('config reload refused, the running config stays', { file, trigger, key: /key "([^"]+)"/.exec(message)?.[1], error: message });
      return;
    }
    if (trigger === 'file' && next.text === lastText) return;
    lastText = next.text;
    const result = await ambassador.reload(next.config, { etcd: next.etcd, registrations: next.registrations });
    for (const attribute of PROCESS_SETTINGS) {
      if (JSON.stringify(next.layered[attribute]?.value) !== JSON.stringify(applied.layered[attribute]?.value)) result.restartNeeded.push(flagName(attribute));
    }
    applied = next;
    log.info('config reloaded', { file, trigger, ...result });
    if (result.restartNeeded.length > 0) {
      log.warn('config changes that take effect only after a restart: the running values stay', { file, settings: result.restartNeeded });
    }
  };
  const schedule = (trigger: string): void => {
    queue = queue.then(() => reload(trigger)).catch((err: unknown) => log.error('config reload failed', { file, trigger, error: errorMessage(err) }));
  };
  const closers: (() => void)[] = [];
  if (file !== undefined) {
    try {
      const watch = watchFile(file, () => schedule('file'), {
        onError: (err) => log.warn('cannot watch the config file any more: reload with the reload signal', { file, error: errorMessage(err) }),
      });
      closers.push(() => watch.close());
    } catch (err) {
      log.warn('cannot watch the config file: reload with the reload signal', { file, error: errorMessage(err) });
    }
  }
  // With a supervised command, every signal but SIGTERM and SIGINT belongs to the child unless --reload-signal claims one.
  const signal = initial.config.reloadSignal ?? (supervised ? undefined : 'SIGHUP');
  if (signal !== undefined) closers.push(io.onSignal(signal, () => schedule(`signal ${signal}`)));
  return { close: () => closers.forEach((close) => close()) };
}

function readOrUndefined(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
