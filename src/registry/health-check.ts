import { MAX_TIMER_MS } from '../core/duration.js';
import { ConfigError, InvalidArgumentError } from '../core/errors.js';
import { parseHostPort } from '../core/host-port.js';
import { parseCheckSend } from './check-send.js';
import { execCheck } from './exec-check.js';
import { DEFAULT_STATUS_RANGES, httpCheck, parseStatusRanges } from './http-check.js';
import { postgresCheck } from './postgres-check.js';
import { redisCheck } from './redis-check.js';
import { parseServiceUrl } from './service-url.js';
import { tcpCheck } from './tcp-check.js';
import { zookeeperCheck } from './zookeeper-check.js';

/** The outcome of one run of a check, with why, for logs and status. */
export interface CheckResult {
  readonly ok: boolean;
  /** A short, stable reason without secrets: `mode follower`, `timed out after 1000 ms waiting for the answer`. */
  readonly reason: string;
}

/** One health check of the registered service (`--check`, docs/architecture.md §4.4). */
export interface HealthCheck {
  /** The check for logs, without secrets: `zookeeper://127.0.0.1:2181`, `http://127.0.0.1:8080/health`, `exec:pg_isready …`. */
  readonly description: string;
  /** How long one run may take, ms, the whole exchange (connect, send, answer); a slower run fails. */
  readonly timeout: number;
  /** Run the check once. Resolves with the result; fails when it times out or `signal` aborts. Never rejects. */
  run(signal?: AbortSignal): Promise<CheckResult>;
}

export interface HealthCheckOptions {
  /** Ms one run may take. Default 2000. */
  timeout?: number;
  /** The setting named in errors (`config/` passes the flag or key typed). Default `check`. */
  what?: string;
  /** Bytes a `tcp://` check writes, with `\n`-style escapes. */
  send?: string | undefined;
  /** A regular expression for `tcp://`, accepted statuses for `http(s)://` (`200-399`). */
  expect?: string | undefined;
  /** How `send` and `expect` are named in errors. Default `check send`, `check expect`. */
  sendWhat?: string;
  expectWhat?: string;
}

export const HEALTH_CHECK_DEFAULTS = { timeout: 2000 } as const;

const EXPECTED =
  'expected tcp://HOST:PORT, zookeeper://HOST[:PORT], redis://HOST[:PORT][?password-file=FILE], postgres://HOST[:PORT], http[s]://HOST[:PORT]/PATH or exec:COMMAND';

/**
 * Parse a `--check` spec (with `--check-send` and `--check-expect`):
 *
 * - `tcp://HOST:PORT`: passes when a connection is accepted; with `send`,
 *   once those bytes are written; with `expect`, once the answer matches that
 *   regular expression (`tcpCheck`);
 * - `zookeeper://HOST[:PORT]` (2181): `srvr`, serving modes only (`zookeeperCheck`);
 * - `redis://HOST[:PORT][?password-file=FILE[&user=NAME]]` (6379): `PING` → `+PONG` (`redisCheck`);
 * - `postgres://HOST[:PORT]` (5432, also `postgresql://`): an SSLRequest answered (`postgresCheck`);
 * - `http://` / `https://HOST[:PORT]/PATH`: a GET whose status is 2xx or 3xx,
 *   or in the `expect` ranges (`httpCheck`);
 * - `exec:COMMAND`: `/bin/sh -c COMMAND` exits with 0 (`execCheck`).
 *
 * The timeout covers a whole run. Throws a `ConfigError` naming the spec for
 * anything else, and for `send`/`expect` given to a kind that takes none.
 */
export function parseHealthCheck(spec: string, options: HealthCheckOptions = {}): HealthCheck {
  const what = options.what ?? 'check';
  const sendWhat = options.sendWhat ?? 'check send';
  const expectWhat = options.expectWhat ?? 'check expect';
  const timeout = options.timeout ?? HEALTH_CHECK_DEFAULTS.timeout;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > MAX_TIMER_MS) {
    throw new InvalidArgumentError(`invalid ${what} timeout "${String(timeout)}": expected a whole number of ms from 1 to ${MAX_TIMER_MS}`);
  }
  const fail = (why: string): never => {
    throw new ConfigError(`invalid ${what} "${spec}": ${why}; ${EXPECTED}`);
  };
  const colon = spec.indexOf(':');
  const scheme = colon === -1 ? '' : spec.slice(0, colon).toLowerCase();
  const takes = (send: boolean, expect: string | undefined): void => {
    if (!send && options.send !== undefined) throw new ConfigError(`invalid ${sendWhat} "${options.send}": only a tcp:// check sends what it is given, not "${scheme}:"`);
    if (expect === undefined && options.expect !== undefined) {
      throw new ConfigError(`invalid ${expectWhat} "${options.expect}": only tcp:// (a regular expression) and http(s):// (statuses) checks take one, not "${scheme}:"`);
    }
  };
  switch (scheme) {
    case 'tcp': {
      takes(true, 'regex');
      if (!spec.slice(colon).startsWith('://')) fail('missing "//" after "tcp:"');
      const target = parseHostPort(spec.slice(colon + 3), `${what} "${spec}"`);
      if (target.port === 0) fail('port 0 cannot be checked');
      const send = options.send === undefined ? undefined : parseCheckSend(options.send, sendWhat);
      let expect: RegExp | undefined;
      if (options.expect !== undefined) {
        try {
          expect = new RegExp(options.expect, 'm');
        } catch (err) {
          throw new ConfigError(`invalid ${expectWhat} "${options.expect}": not a regular expression (${(err as Error).message})`);
        }
      }
      return tcpCheck(target, timeout, send, expect);
    }
    case 'zookeeper':
      takes(false, undefined);
      return zookeeperCheck(parseServiceUrl(spec, 2181, [], fail), timeout);
    case 'redis': {
      takes(false, undefined);
      const target = parseServiceUrl(spec, 6379, ['password-file', 'user'], fail);
      if (target.params.has('user') && !target.params.has('password-file')) fail('"user" needs a "password-file"');
      return redisCheck(target, timeout);
    }
    case 'postgres':
    case 'postgresql':
      takes(false, undefined);
      return postgresCheck(parseServiceUrl(spec, 5432, [], fail), timeout);
    case 'http':
    case 'https': {
      takes(false, 'statuses');
      let url: URL;
      try {
        url = new URL(spec);
      } catch {
        return fail('not a URL');
      }
      if (url.hostname === '') fail('missing host');
      if (url.hash !== '') fail('a "#fragment" is never sent to the server');
      if (url.port === '0') fail('port 0 cannot be checked');
      let statuses = DEFAULT_STATUS_RANGES;
      if (options.expect !== undefined) {
        statuses = parseStatusRanges(options.expect) ?? fail(`${expectWhat} "${options.expect}" is not a status or range, e.g. 200 or 200-399 or 200,204`);
      }
      return httpCheck(url, timeout, statuses);
    }
    case 'exec': {
      takes(false, undefined);
      const command = spec.slice(colon + 1).trim();
      if (command === '') fail('missing command after "exec:"');
      return execCheck(command, timeout);
    }
    default:
      return fail(scheme === '' ? 'no kind of check given' : `unknown kind of check "${scheme}"`);
  }
}
