import { isIP } from 'node:net';
import { isHostName } from './dns-name.js';
import { ConfigError } from './errors.js';

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parse `HOST[:PORT]`, `[IPv6]:PORT` or a bare IPv6 address.
 * `what` names the setting in the error message (e.g. `--listen`).
 */
export function parseHostPort(value: string, what: string, defaultPort?: number): HostPort {
  const expected = defaultPort === undefined ? 'HOST:PORT' : 'HOST[:PORT]';
  const fail = (why: string): never => {
    throw new ConfigError(`invalid ${what} "${value}": ${why}, expected ${expected}`);
  };
  const text = value.trim();
  if (text === '') fail('empty');
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2];
  } else if (isIP(text) === 6) {
    host = text;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) {
      host = text;
    } else {
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
  }
  if (host === '') fail('missing host');
  if (bracketed && isIP(host) !== 6) fail(`"${host}" is not an IPv6 address`);
  if (isIP(host) === 0 && !isHostName(host)) {
    fail(`"${host}" is neither an IP address nor a host name`);
  }
  if (portText === undefined) {
    if (defaultPort === undefined) fail('missing port');
    return { host, port: defaultPort as number };
  }
  return { host, port: parsePort(portText, `${what} "${value}"`) };
}

/**
 * Parse the address of a server to send to (`--cluster-dns`, `--upstream`):
 * `IP[:PORT]`, an IP address (a reply is matched by its source address, so
 * not a name) and a port 1-65535.
 */
export function parseServerAddress(value: string, what: string, defaultPort: number): HostPort {
  const address = parseHostPort(value, what, defaultPort);
  if (isIP(address.host) === 0) throw new ConfigError(`invalid ${what} "${value}": "${address.host}" is not an IP address, expected IP[:PORT]`);
  if (address.port === 0) throw new ConfigError(`invalid ${what} "${value}": port 0 cannot be sent to, expected IP[:PORT]`);
  return address;
}

/** Parse a TCP/UDP port number 0..65535 (0 = any free port). */
export function parsePort(value: string, what: string): number {
  if (!/^\d{1,5}$/.test(value.trim())) throw new ConfigError(`invalid port "${value}" in ${what}: expected a number 0-65535`);
  const port = Number(value);
  if (port > 65535) throw new ConfigError(`invalid port "${value}" in ${what}: expected a number 0-65535`);
  return port;
}

/** Format a host and port the way users type them (`[::1]:53`, `127.0.0.1:53`). */
export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
