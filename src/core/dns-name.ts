/**
 * The rules of DNS names, in one place: labels, host names, service labels,
 * the canonical form and the limits of the wire. Pure predicates and reasons;
 * each caller words its own message, naming what the user typed.
 *
 * Two kinds of name, because srvlink both writes names and reads them:
 * - a host label (RFC 1123 §2.1): letters, digits and inner hyphens, the
 *   strict form of the names srvlink makes up (a registered service or
 *   instance, the labels of a short SERVICE argument);
 * - a domain name: labels that may also hold underscores (`_tcp`, SRV owner
 *   names, the container names of some tools), which is what DNS data holds
 *   and what a resolver is asked. A host name is a domain name whose last
 *   label is not all digits (RFC 3696 §2: `10.0.0.256` is a mistyped address).
 */

/** The longest label, octets (RFC 1035 §2.3.4). */
export const MAX_LABEL_OCTETS = 63;
/** The longest name on the wire, octets, counting each label's length octet and the root (RFC 1035 §2.3.4). */
export const MAX_NAME_OCTETS = 255;
/** The longest name as text, without its trailing dot: 255 octets less the first length octet and the root. */
export const MAX_NAME_LENGTH = 253;

const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
const DOMAIN_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$/;

/** The trailing dot dropped, case kept, as names are shown and joined: `zk1.skydns.local.` → `zk1.skydns.local`; the root is `''`. */
export function relativeName(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** Lower case, trailing dot dropped (RFC 4343: names compare case-insensitively); the root is `''`. */
export function canonicalName(name: string): string {
  return relativeName(name).toLowerCase();
}

/** `canonicalName` fully qualified: `example.com.`; the root is `.`. */
export function absoluteName(name: string): string {
  return `${canonicalName(name)}.`;
}

/** Whether `name` is `zone` or below it (both compared canonically). */
export function isInZone(name: string, zone: string): boolean {
  const n = canonicalName(name);
  const z = canonicalName(zone);
  if (z === '') return true;
  return n === z || n.endsWith(`.${z}`);
}

/** Why `label` is not a host label, in a few words (`empty`, `starts or ends with "-"`, `holds "_"`), or undefined. */
export function hostLabelProblem(label: string): string | undefined {
  if (label === '') return 'empty';
  if (label.length > MAX_LABEL_OCTETS) return `${label.length} characters long, at most ${MAX_LABEL_OCTETS} allowed`;
  if (HOST_LABEL.test(label)) return undefined;
  if (/^-|-$/.test(label)) return 'starts or ends with "-"';
  const odd = /[^A-Za-z0-9-]/.exec(label)?.[0] ?? '';
  return `holds ${JSON.stringify(odd)}`;
}

/** A host label (RFC 1123 §2.1): 1 to 63 letters, digits or inner hyphens; a leading digit is allowed. */
export function isHostLabel(label: string): boolean {
  return hostLabelProblem(label) === undefined;
}

/** A service or protocol label (RFC 2782, RFC 6335 §5.1): `_` and a host label, `_zookeeper`, `_tcp`. */
export function isServiceLabel(label: string): boolean {
  return label.startsWith('_') && isHostLabel(label.slice(1));
}

/** A label of a domain name: 1 to 63 letters, digits, underscores or inner hyphens. */
export function isDomainLabel(label: string): boolean {
  return label.length <= MAX_LABEL_OCTETS && DOMAIN_LABEL.test(label);
}

/**
 * A domain name as text (`skydns.local`, `_zk._tcp.env1.skydns.local.`):
 * domain labels, at most 253 characters, one trailing dot allowed. Not the
 * root, not an empty string.
 */
export function isDomainName(name: string): boolean {
  const trimmed = relativeName(name);
  if (trimmed === '' || trimmed.length > MAX_NAME_LENGTH) return false;
  return trimmed.split('.').every(isDomainLabel);
}

/** A name to connect to: a domain name whose last label is not all digits (that is a mistyped address, RFC 3696 §2). */
export function isHostName(name: string): boolean {
  if (!isDomainName(name)) return false;
  const labels = canonicalName(name).split('.');
  return !/^[0-9]+$/.test(labels[labels.length - 1] ?? '');
}

/** Why a sequence of labels cannot go on the wire (RFC 1035 §2.3.4), for the caller to word. */
export type WireNameProblem =
  | { readonly kind: 'emptyLabel'; readonly label: string }
  | { readonly kind: 'longLabel'; readonly label: string; readonly octets: number }
  | { readonly kind: 'longName'; readonly octets: number };

/**
 * Why `labels` cannot make a name on the wire, or undefined: every label 1 to
 * 63 octets (UTF-8), the whole at most 255 octets with the length octets and
 * the root. Labels are taken as they are (a dot inside one is not split).
 */
export function wireNameProblem(labels: readonly string[]): WireNameProblem | undefined {
  let octets = 1;
  for (const label of labels) {
    const length = Buffer.byteLength(label);
    if (length === 0) return { kind: 'emptyLabel', label };
    if (length > MAX_LABEL_OCTETS) return { kind: 'longLabel', label, octets: length };
    octets += length + 1;
  }
  if (octets > MAX_NAME_OCTETS) return { kind: 'longName', octets };
  return undefined;
}
