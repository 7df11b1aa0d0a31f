import type { request as httpRequest } from 'node:http';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { errorMessage } from '../core/errors.js';
import { boundedCheck } from './bounded-check.js';
import type { HealthCheck } from './health-check.js';

/** Accepted statuses: inclusive ranges. */
export type StatusRanges = readonly (readonly [number, number])[];

/** 2xx and 3xx: a redirect says the server is up (redirects are not followed). */
export const DEFAULT_STATUS_RANGES: StatusRanges = [[200, 399]];

/**
 * Parse the statuses an http check accepts (`--check-expect` of an http
 * check): `200`, `200-299`, or a comma list of both (`200,204,300-399`).
 * Undefined when the text is not of that form.
 */
export function parseStatusRanges(text: string): StatusRanges | undefined {
  const ranges: [number, number][] = [];
  for (const part of text.split(',')) {
    const match = /^\s*(\d{3})(?:\s*-\s*(\d{3}))?\s*$/.exec(part);
    if (!match) return undefined;
    const low = Number(match[1]);
    const high = match[2] === undefined ? low : Number(match[2]);
    if (low < 100 || high > 599 || low > high) return undefined;
    ranges.push([low, high]);
  }
  return ranges;
}

/**
 * `http://` or `https://HOST[:PORT]/PATH`: a GET on a fresh connection
 * (`connection: close`), passing when the status is in `statuses`. User and
 * password in the URL become Basic auth and are left out of `description`.
 * https does not verify the certificate (HAProxy's `check-ssl verify none`):
 * the check asks whether the server answers, and health endpoints on
 * loopback rarely carry a certificate for 127.0.0.1.
 */
export function httpCheck(url: URL, timeout: number, statuses: StatusRanges): HealthCheck {
  const secure = url.protocol === 'https:';
  // URL.hostname keeps the brackets of an IPv6 address; the socket wants it bare.
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  const path = `${url.pathname}${url.search}`;
  const auth = url.username === '' ? undefined : `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  const shownStatuses = statuses.map(([low, high]) => (low === high ? `${low}` : `${low}-${high}`)).join(',');
  const defaultStatuses = statuses === DEFAULT_STATUS_RANGES;
  const shown = `${secure ? 'https' : 'http'}://${isIP(host) === 6 ? `[${host}]` : host}${url.port === '' ? '' : `:${url.port}`}${path}${defaultStatuses ? '' : ` (status ${shownStatuses})`}`;
  // Loaded with the first check made: TLS costs a process that never checks over HTTPS about 2 MB.
  const request = (createRequire(import.meta.url)(secure ? 'node:https' : 'node:http') as { request: typeof httpRequest }).request;
  return {
    description: shown,
    timeout,
    run: (outer) =>
      boundedCheck(
        timeout,
        outer,
        (signal, note) =>
          new Promise((resolve) => {
            // agent: false: a fresh connection per check, closed after it, so a
            // check never rides on a kept-alive socket the server has forgotten.
            const req = request({
              host,
              port,
              path,
              method: 'GET',
              agent: false,
              signal,
              ...(secure ? { rejectUnauthorized: false, ...(isIP(host) === 0 ? { servername: host } : {}) } : {}),
              ...(auth === undefined ? {} : { auth }),
              headers: { 'user-agent': 'srvlink-health-check', connection: 'close', accept: '*/*' },
            });
            req.once('socket', (socket) => socket.once(secure ? 'secureConnect' : 'connect', () => note('waiting for the response')));
            req.once('response', (res) => {
              const status = res.statusCode ?? 0;
              res.resume();
              res.once('error', () => undefined);
              req.destroy();
              const ok = statuses.some(([low, high]) => status >= low && status <= high);
              resolve({ ok, reason: ok ? `status ${status}` : `status ${status}, expected ${shownStatuses}` });
            });
            req.once('error', (err) => resolve({ ok: false, reason: errorMessage(err) }));
            req.end();
          }),
      ),
  };
}
