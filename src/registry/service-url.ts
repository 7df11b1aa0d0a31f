import { isIP } from 'node:net';

/** Where a ready-made check connects, and its settings from the query string. */
export interface ServiceUrl {
  host: string;
  port: number;
  /** `host:port` as logs show it (IPv6 in brackets). */
  hostPort: string;
  params: ReadonlyMap<string, string>;
}

/**
 * Parse `SCHEME://HOST[:PORT][?key=value&...]` of a ready-made check
 * (`zookeeper://`, `redis://`, `postgres://`): no path, no user or password
 * (secrets come from files, never from a command line that `ps` shows), only
 * the query keys in `keys`. Calls `fail` (which throws) with the reason.
 */
export function parseServiceUrl(spec: string, defaultPort: number, keys: readonly string[], fail: (why: string) => never): ServiceUrl {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    return fail('not a URL');
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') fail('missing host');
  if (url.username !== '' || url.password !== '') fail('a user or password in the URL would show in `ps` and logs; use ?password-file=FILE');
  if (url.pathname !== '' && url.pathname !== '/') fail(`unexpected path "${url.pathname}"`);
  if (url.hash !== '') fail('unexpected "#fragment"');
  const port = url.port === '' ? defaultPort : Number(url.port);
  if (port === 0) fail('port 0 cannot be checked');
  const params = new Map<string, string>();
  for (const [key, value] of url.searchParams) {
    if (!keys.includes(key)) fail(keys.length === 0 ? `unexpected query key "${key}"` : `unknown query key "${key}", expected ${keys.join(' or ')}`);
    if (value === '') fail(`empty value for "${key}"`);
    params.set(key, value);
  }
  return { host, port, hostPort: `${isIP(host) === 6 ? `[${host}]` : host}:${port}`, params };
}
