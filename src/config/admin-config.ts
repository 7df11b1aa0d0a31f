import { ConfigError } from '../core/errors.js';
import { parseHostPort, type HostPort } from '../core/host-port.js';

/** Where the access log goes: stderr, or a file (appended to, reopened on SIGUSR1 or when moved away). */
export type AccessLogTarget = { kind: 'stderr' } | { kind: 'file'; path: string };

/** The admin endpoint's address and the access log, as every command takes them. */
export interface AdminConfig {
  /** `--admin ADDR:PORT`; undefined for `none` (or not given where it is off by default). */
  admin: HostPort | undefined;
  /** `--access-log`; undefined when off. */
  accessLog: AccessLogTarget | undefined;
}

/**
 * Read `--admin` and `--access-log` (`what` names each setting as the user
 * gave it, e.g. `SRVLINK_ADMIN (for --admin)`). `none` or an absent value
 * turns either off.
 */
export function parseAdminConfig(admin: unknown, accessLog: unknown, what: (setting: 'admin' | 'access-log') => string): AdminConfig {
  return { admin: parseAdmin(admin, what('admin')), accessLog: parseAccessLog(accessLog, what('access-log')) };
}

function parseAdmin(value: unknown, what: string): HostPort | undefined {
  if (value === undefined || value === 'none') return undefined;
  if (typeof value !== 'string') throw new ConfigError(`invalid ${what} "${String(value)}": expected ADDR:PORT or none`);
  return parseHostPort(value, what);
}

function parseAccessLog(value: unknown, what: string): AccessLogTarget | undefined {
  if (value === undefined || value === false || value === 'none' || value === 'off') return undefined;
  if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(`invalid ${what} "${String(value)}": expected stderr or a file path`);
  return value === 'stderr' ? { kind: 'stderr' } : { kind: 'file', path: value };
}
