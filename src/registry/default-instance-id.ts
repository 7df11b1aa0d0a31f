import { MAX_LABEL_OCTETS } from '../core/dns-name.js';

/** The host-name part when the host name has nothing usable in it. */
const FALLBACK = 'srvlink';

/**
 * A default instance id: a DNS label made of the host name and the port,
 * `web-7f9c-31001` for host `Web_7F9C` and port 31001. In a container the
 * host name is the container's (unique on the machine); with host
 * networking the port tells instances apart.
 *
 * Lower case; every character other than a letter, digit or hyphen becomes
 * `-` (dots too, so a full name keeps its domain: `web1-example-com-8080`);
 * runs of `-` collapse to one; the host-name part is shortened so that the
 * port always fits in the 63 characters of a label; never a leading or
 * trailing `-`.
 */
export function defaultInstanceId(hostname: string, port: number): string {
  const suffix = `-${port}`;
  const clean = (text: string): string => text.replace(/-+/g, '-').replace(/^-+|-+$/g, '');
  let base = clean(hostname.toLowerCase().replace(/[^a-z0-9-]/g, '-'));
  base = clean(base.slice(0, MAX_LABEL_OCTETS - suffix.length));
  return `${base === '' ? FALLBACK : base}${suffix}`;
}
