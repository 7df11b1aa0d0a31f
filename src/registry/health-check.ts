import { MAX_TIMER_MS } from '../core/duration.js';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { connect, isIP } from 'node:net';
import { ConfigError } from '../core/errors.js';
import { formatHostPort, parseHostPort, type HostPort } from '../core/host-port.js';

/** One health check of the registered service (`--check`, docs/architecture.md §4.4). */
export interface HealthCheck {
  /** The check for logs, without secrets: `tcp://127.0.0.1:8080`, `http://127.0.0.1:8080/health`, `exec:pg_isready …`. */
  readonly description: string;
  /** How long one run may take, ms; a slower run counts as failed. */
  readonly timeout: number;
  /**
   * Run the check once. Resolves true when it passes; false when it fails,
   * times out or `signal` aborts. Never rejects.
   */
  run(signal?: AbortSignal): Promise<boolean>;
}

export interface HealthCheckOptions {
  /** Ms one run may take. Default 2000. */
  timeout?: number;
  /** The setting named in errors. Default `--check`. */
  what?: string;
}

export const HEALTH_CHECK_DEFAULTS = { timeout: 2000 } as const;

const EXPECTED = 'expected tcp://HOST:PORT, http://HOST[:PORT]/PATH or exec:COMMAND';

/**
 * Parse a `--check` spec:
 *
 * - `tcp://HOST:PORT`: passes when a TCP connection is accepted (then closed at once);
 * - `http://HOST[:PORT]/PATH`: passes on a 2xx or 3xx status to a GET
 *   (redirects are not followed: a 3xx says the server is up); user and
 *   password in the URL become Basic auth and are left out of `description`;
 * - `exec:COMMAND`: passes when `/bin/sh -c COMMAND` exits with 0; on timeout
 *   its whole process group is killed. Its output is discarded.
 *
 * Throws a `ConfigError` naming the spec for anything else.
 */
export function parseHealthCheck(spec: string, options: HealthCheckOptions = {}): HealthCheck {
  const what = options.what ?? '--check';
  const timeout = options.timeout ?? HEALTH_CHECK_DEFAULTS.timeout;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > MAX_TIMER_MS) {
    throw new ConfigError(`invalid ${what} timeout "${String(timeout)}": expected a whole number of ms from 1 to ${MAX_TIMER_MS}`);
  }
  const fail = (why: string): never => {
    throw new ConfigError(`invalid ${what} "${spec}": ${why}; ${EXPECTED}`);
  };
  const colon = spec.indexOf(':');
  const scheme = colon === -1 ? '' : spec.slice(0, colon).toLowerCase();
  switch (scheme) {
    case 'tcp': {
      if (!spec.slice(colon).startsWith('://')) fail('missing "//" after "tcp:"');
      const target = parseHostPort(spec.slice(colon + 3), `${what} "${spec}"`);
      if (target.port === 0) fail('port 0 cannot be checked');
      return tcpCheck(target, timeout);
    }
    case 'http': {
      let url: URL;
      try {
        url = new URL(spec);
      } catch {
        return fail('not a URL');
      }
      if (url.hostname === '') fail('missing host');
      if (url.hash !== '') fail('a "#fragment" is never sent to the server');
      if (url.port === '0') fail('port 0 cannot be checked');
      return httpCheck(url, timeout);
    }
    case 'exec': {
      const command = spec.slice(colon + 1).trim();
      if (command === '') fail('missing command after "exec:"');
      return execCheck(command, timeout);
    }
    default:
      return fail(scheme === '' ? 'no kind of check given' : `unknown kind of check "${scheme}"`);
  }
}

/**
 * Run `attempt` with a signal that aborts after `timeout` ms or when
 * `outer` aborts, whichever comes first; any rejection counts as a failure.
 */
async function bounded(timeout: number, outer: AbortSignal | undefined, attempt: (signal: AbortSignal) => Promise<boolean>): Promise<boolean> {
  if (outer?.aborted) return false;
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  const timer = setTimeout(abort, timeout);
  outer?.addEventListener('abort', abort, { once: true });
  try {
    return await attempt(controller.signal);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', abort);
  }
}

function tcpCheck(target: HostPort, timeout: number): HealthCheck {
  return {
    description: `tcp://${formatHostPort(target)}`,
    timeout,
    run: (outer) =>
      bounded(
        timeout,
        outer,
        (signal) =>
          new Promise<boolean>((resolve) => {
            const socket = connect({ host: target.host, port: target.port });
            const done = (passed: boolean): void => {
              signal.removeEventListener('abort', onAbort);
              socket.destroy();
              resolve(passed);
            };
            const onAbort = (): void => done(false);
            signal.addEventListener('abort', onAbort, { once: true });
            socket.once('connect', () => done(true));
            socket.once('error', () => done(false));
          }),
      ),
  };
}

function httpCheck(url: URL, timeout: number): HealthCheck {
  // URL.hostname keeps the brackets of an IPv6 address; the socket wants it bare.
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? 80 : Number(url.port);
  const path = `${url.pathname}${url.search}`;
  const auth = url.username === '' ? undefined : `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  const shown = `http://${isIP(host) === 6 ? `[${host}]` : host}${url.port === '' ? '' : `:${url.port}`}${path}`;
  return {
    description: shown,
    timeout,
    run: (outer) =>
      bounded(
        timeout,
        outer,
        (signal) =>
          new Promise<boolean>((resolve) => {
            // agent: false: a fresh connection per check, closed after it, so a
            // check never rides on a kept-alive socket the server has forgotten.
            const req = request({
              host,
              port,
              path,
              method: 'GET',
              agent: false,
              signal,
              ...(auth === undefined ? {} : { auth }),
              headers: { 'user-agent': 'srvlink-health-check', connection: 'close', accept: '*/*' },
            });
            req.once('response', (res) => {
              const status = res.statusCode ?? 0;
              res.destroy();
              req.destroy();
              resolve(status >= 200 && status < 400);
            });
            req.once('error', () => resolve(false));
            req.end();
          }),
      ),
  };
}

function execCheck(command: string, timeout: number): HealthCheck {
  // Only the program's name: arguments may hold passwords (`mysqladmin -pSECRET ping`).
  const words = command.split(/\s+/);
  const description = `exec:${words[0] ?? ''}${words.length > 1 ? ' …' : ''}`;
  return {
    description,
    timeout,
    run: (outer) =>
      bounded(
        timeout,
        outer,
        (signal) =>
          new Promise<boolean>((resolve) => {
            // Its own process group (detached), so a timeout kills the shell and
            // everything it started, not just the shell.
            const child = spawn('/bin/sh', ['-c', command], { stdio: 'ignore', detached: true });
            const killGroup = (): void => {
              if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
              try {
                process.kill(-child.pid, 'SIGKILL');
              } catch {
                // Already gone.
              }
            };
            const onAbort = (): void => {
              killGroup();
              resolve(false);
            };
            signal.addEventListener('abort', onAbort, { once: true });
            child.once('error', () => {
              signal.removeEventListener('abort', onAbort);
              resolve(false);
            });
            child.once('exit', (code) => {
              signal.removeEventListener('abort', onAbort);
              resolve(code === 0);
            });
          }),
      ),
  };
}
