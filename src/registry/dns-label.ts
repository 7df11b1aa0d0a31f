/** The longest label a DNS name may hold (RFC 1035 §2.3.4). */
export const MAX_LABEL_LENGTH = 63;

/**
 * Whether `label` is a host-name label (RFC 1123 §2.1, RFC 952): 1 to 63
 * letters, digits or hyphens, neither first nor last a hyphen. A leading
 * digit is allowed (RFC 1123 relaxed RFC 952 on that point).
 */
export function isDnsLabel(label: string): boolean {
  return label.length <= MAX_LABEL_LENGTH && /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/.test(label);
}
