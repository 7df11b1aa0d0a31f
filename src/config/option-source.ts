/**
 * Where a setting's value came from, so that errors name what the user typed:
 * the flag, or the environment variable standing in for it.
 */
export interface OptionSource {
  flag: string;
  env?: string;
  /** The config file, when `from` is 'config'. */
  file?: string;
  from: 'cli' | 'env' | 'config' | 'default';
}

/** `--zone`, `SRVLINK_ZONE (for --zone)` or `key "zone" in /etc/srvlink.yaml`, for error messages. */
export function describeSource(source: OptionSource): string {
  if (source.from === 'env' && source.env) return `${source.env} (for ${source.flag})`;
  if (source.from === 'config' && source.file) return `key "${source.flag.replace(/^--/, '')}" in ${source.file}`;
  return source.flag;
}

/** Split repeatable values, allowing commas (how lists arrive through environment variables). */
export function splitList(values: readonly string[] | string | undefined): string[] {
  if (values === undefined) return [];
  const list = typeof values === 'string' ? [values] : values;
  return list.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

/** The flag name of a commander attribute: `clusterDns` → `cluster-dns`. */
export function flagName(attribute: string): string {
  return attribute.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
