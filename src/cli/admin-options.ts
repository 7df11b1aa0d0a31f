import type { Command } from 'commander';
import { parseAdminConfig } from '../config/admin-config.js';
import type { LayeredValue } from '../config/layer-settings.js';
import { describeSource } from '../config/option-source.js';
import { SrvlinkError, errorMessage } from '../core/errors.js';
import type { HostPort } from '../core/host-port.js';
import type { Logger, LogFormat } from '../core/logger.js';
import { AccessLog } from '../admin/access-log.js';
import { envOption, type CliIo } from './cli-context.js';

/** The admin endpoint and access log of a command, opened. */
export interface AdminSettings {
  admin: HostPort | undefined;
  accessLog: AccessLog | undefined;
  /** Close the access log and stop listening for SIGUSR1. */
  close(): Promise<void>;
}

/** Add `--admin` (default `defaultAdmin`, or off) and, for commands that forward connections, `--access-log` to `command`. */
export function withAdminOptions(command: Command, defaultAdmin: string | undefined, accessLog = false): Command {
  const admin = envOption(
    '--admin <addr:port|none>',
    `admin HTTP endpoint: /metrics, /healthz, /readyz, /status${defaultAdmin === undefined ? ' (default: none)' : ''}`,
    'SRVLINK_ADMIN',
  );
  command.addOption(defaultAdmin === undefined ? admin : admin.default(defaultAdmin));
  if (!accessLog) return command;
  return command.addOption(
    envOption('--access-log <stderr|file>', 'one line per closed connection; a file is reopened when moved away, and on SIGUSR1 unless a command is supervised (default: off)', 'SRVLINK_ACCESS_LOG'),
  );
}

/**
 * Check `--admin` and `--access-log` and open the access log; SIGUSR1
 * reopens it (log rotation), unless `signalsBelongToCommand`: with a
 * supervised command SIGUSR1 is the command's alone (docs/architecture.md
 * §4.6), and the file is reopened when it is moved away or deleted. Settings
 * come layered (flag, env, file) so that errors name what the user typed.
 */
export async function openAdminSettings(
  io: CliIo,
  settings: { admin?: LayeredValue | undefined; accessLog?: LayeredValue | undefined },
  format: LogFormat,
  log: Logger,
  options: { signalsBelongToCommand?: boolean } = {},
): Promise<AdminSettings> {
  const what = (setting: 'admin' | 'access-log'): string => {
    const given = setting === 'admin' ? settings.admin : settings.accessLog;
    return given ? describeSource(given.source) : `--${setting}`;
  };
  const config = parseAdminConfig(settings.admin?.value, settings.accessLog?.value, what);
  if (!config.accessLog) return { admin: config.admin, accessLog: undefined, close: () => Promise.resolve() };
  const accessLog = new AccessLog({ target: config.accessLog, format, stderr: io.stderr, logger: log.child({ component: 'access-log' }) });
  try {
    await accessLog.start();
  } catch (err) {
    throw new SrvlinkError('ERR_ACCESS_LOG', `cannot open access log "${config.accessLog.kind === 'file' ? config.accessLog.path : 'stderr'}": ${errorMessage(err)}`, { cause: err });
  }
  const off = options.signalsBelongToCommand ? () => undefined : io.onSignal('SIGUSR1', () => void accessLog.reopen());
  if (config.accessLog.kind === 'file') {
    log.info('access log open', { file: config.accessLog.path, reopen: options.signalsBelongToCommand ? 'when moved or deleted (SIGUSR1 goes to the command)' : 'on SIGUSR1, or when moved or deleted' });
  }
  return {
    admin: config.admin,
    accessLog,
    close: async () => {
      off();
      await accessLog.close();
    },
  };
}
