import { isIP } from 'node:net';
import { ConfigError } from './errors.js';

/** A network in CIDR notation. */
export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/**
 * Parse `ADDRESS/PREFIX` (a bare address is a /32 or /128). `what` names the
 * setting in the error (`--allow-from`).
 */
export function parseCidr(value: string, what: string): Cidr {
  const text = value.trim();
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) throw new ConfigError(`invalid ${what} "${value}": "${address}" is not an IP address, expected a network like 10.0.0.0/8`);
  const max = version === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(max) : text.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > max) {
    throw new ConfigError(`invalid ${what} "${value}": prefix length "${prefixText}" must be 0-${max}`);
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** `10.0.0.0/8`. */
export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefix}`;
}
